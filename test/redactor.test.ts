// The redactor of use-only calls: nothing the agent observes may tell it whether a guess is part
// of a value (the oracle), the encodings real servers produce by default are recognised across
// chunk boundaries, and every string of the answer's head is redacted. The oracle and head tests
// run the real call handler against a real local HTTPS upstream that echoes what it is sent.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import type { ServerResponse } from "node:http";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { z } from "zod";
import { REDACTION_MARK, type Call } from "../src/shared/calls.js";
import type { GrantTerms } from "../src/shared/grant-terms.js";
import type { LinkMessage } from "../src/shared/protocol.js";
import type { CallGrants } from "../src/main/core/calls/call-grants.js";
import { createCallHandler } from "../src/main/core/calls/call-handler.js";
import { createStreamRedactor, needlesFor, redactString } from "../src/main/core/calls/redactor.js";
import { createUpstream, type Upstream } from "../src/main/core/calls/upstream.js";
import { startUpstream, type Received, type TestUpstream } from "./calls-upstream.js";
import { tempDir } from "./helpers.js";

/** Runs `text` through a stream redactor in pieces of `size` bytes. */
function streamed(text: string, needles: string[], size: number): string {
  const r = createStreamRedactor(needles);
  const data = Buffer.from(text, "utf8");
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) out.push(r.push(data.subarray(at, at + size)));
  out.push(r.end());
  return Buffer.concat(out).toString("utf8");
}

/** Redacts `text` whole, in 1-byte and in 7-byte pieces; all three must agree. */
function redactAll(text: string, needles: string[]): string {
  const whole = redactString(text, needles).text;
  for (const size of [1, 7]) assert.equal(streamed(text, needles, size), whole, `in ${size}-byte pieces`);
  return whole;
}

describe("redactor: the encodings servers produce by default", () => {
  // Characters every encoder treats differently, and one outside ASCII.
  const VALUE = `sk-live/ab+cd=ef 42xyz<&>'"é~!*()`;
  const needles = needlesFor(VALUE);
  // Real Python, as a server written in it would encode the value.
  const python = (code: string): Record<string, string> =>
    z
      .record(z.string(), z.string())
      .parse(
        JSON.parse(
          execFileSync(
            "python3",
            ["-c", `import sys, json, urllib.parse, html, base64, email.base64mime\nv = sys.argv[1]\n${code}`, VALUE],
            { encoding: "utf8" },
          ),
        ),
      );

  it("finds the value in each encoding, whole and split into pieces", () => {
    const forms: Record<string, string> = {
      ...python(`print(json.dumps({
  "urllib.parse.quote (safe '/')": urllib.parse.quote(v),
  "urllib.parse.quote (safe '')": urllib.parse.quote(v, safe=""),
  "urllib.parse.quote_plus": urllib.parse.quote_plus(v),
  "urllib.parse.urlencode": urllib.parse.urlencode({"k": v})[2:],
  "json.dumps (ensure_ascii)": json.dumps(v)[1:-1],
  "json.dumps (ensure_ascii=False)": json.dumps(v, ensure_ascii=False)[1:-1],
  "html.escape": html.escape(v),
  "hex": v.encode().hex(),
  "HEX": v.encode().hex().upper(),
}))`),
      "lower-case %xx": encodeURIComponent(VALUE).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
      // Go's encoding/json escapes <, > and & by default (HTMLEscape) and leaves other text as UTF-8.
      "Go encoding/json": JSON.stringify(VALUE)
        .slice(1, -1)
        .replace(/[<>&]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`),
      // Go's html/template and many others write numeric references for quotes.
      "numeric references": VALUE.replaceAll("&", "&amp;")
        .replaceAll("<", "&lt;")
        .replaceAll(">", "&gt;")
        .replaceAll("'", "&#39;")
        .replaceAll('"', "&#34;"),
      "hex references": VALUE.replaceAll("&", "&#x26;").replaceAll("'", "&#X27;").replaceAll('"', "&QUOT;"),
    };
    for (const [name, form] of Object.entries(forms)) {
      assert.notEqual(form, VALUE, name);
      assert.equal(redactAll(`before ${form} after`, needles), `before ${REDACTION_MARK} after`, name);
    }
  });

  it("finds a value whose case was changed", () => {
    const ascii = "sk-Live_AbCd0123xyZ";
    for (const form of [ascii.toUpperCase(), ascii.toLowerCase(), Buffer.from(ascii).toString("hex").toUpperCase()]) {
      assert.equal(redactAll(`<${form}>`, needlesFor(ascii)), `<${REDACTION_MARK}>`, form);
    }
  });

  it("finds the value inside a larger base64 document at any offset, with MIME (76, CRLF) and PEM (64, LF) line breaks, and as in a JWT", () => {
    // Every base64 character that carries a bit of the value goes, with nothing else.
    const b64Forms = python(`out = {}
for k in range(3):
    doc = ("x" * (5 + k) + v + "tail-of-the-document").encode()
    out[f"mime {k}"] = base64.encodebytes(doc * 3).decode()
    out[f"mime crlf {k}"] = email.base64mime.body_encode(doc * 3, eol="\\r\\n")
    b = base64.b64encode(doc * 3).decode()
    out[f"pem {k}"] = "\\n".join(b[i:i + 64] for i in range(0, len(b), 64))
    out[f"jwt {k}"] = base64.urlsafe_b64encode(json.dumps({"iss": "x" * k, "key": v}, ensure_ascii=False).encode()).decode().rstrip("=")
print(json.dumps(out))`);
    for (const [name, form] of Object.entries(b64Forms)) {
      const out = redactAll(`before ${form} after`, needles);
      assert.ok(out.includes(REDACTION_MARK), name);
      const flat = out.replace(/\r?\n/g, "");
      const url = name.startsWith("jwt");
      const doc = Buffer.from(form.replace(/\s/g, ""), url ? "base64url" : "base64");
      const b64 = url ? doc.toString("base64url") : doc.toString("base64");
      // The characters that carry bits of each occurrence of the value's bytes go; of the others,
      // at most one next to each occurrence (a needle made of base64 takes a neighbour along).
      const valueBytes = Buffer.from(url ? JSON.stringify(VALUE).slice(1, -1) : VALUE, "utf8");
      const kept: string[] = [];
      let pos = 0;
      for (let at = doc.indexOf(valueBytes); at >= 0; at = doc.indexOf(valueBytes, at + 1)) {
        kept.push(b64.slice(pos, Math.floor((8 * at) / 6)));
        pos = Math.floor((8 * (at + valueBytes.length) - 1) / 6) + 1;
      }
      kept.push(b64.slice(pos));
      const segments = flat.slice("before ".length, -" after".length).split(REDACTION_MARK);
      assert.equal(segments.length, kept.length, name);
      segments.forEach((segment, i) => {
        const whole = kept[i] ?? "";
        const trimmed = [whole, whole.slice(1), whole.slice(0, -1), whole.slice(1, -1)];
        const allowed = trimmed.filter((_t, k) => (i > 0 || k % 2 === 0) && (i < kept.length - 1 || k < 2));
        assert.ok(allowed.includes(segment), `${name}: ${segment} is not ${whole}`);
      });
    }
  });

  it("holds back a fixed window whatever the bytes, and a timer passes on what waited", async () => {
    const released: Buffer[] = [];
    let wake: () => void = () => undefined;
    const r = createStreamRedactor(needles, {
      holdMs: 0,
      onRelease: (b) => {
        released.push(b);
        wake();
      },
    });
    // A possible start of the value and ordinary text are held back alike.
    assert.equal(r.push(Buffer.from("data: sk-li")).length, 0);
    await new Promise<void>((resolve) => (wake = resolve));
    assert.equal(Buffer.concat(released).toString(), "data: sk-li");
    released.length = 0;
    assert.equal(r.push(Buffer.from("data: one\n\n")).length, 0);
    await new Promise<void>((resolve) => (wake = resolve));
    assert.equal(Buffer.concat(released).toString(), "data: one\n\n");
    // A long answer goes on as it comes, all but the window, whatever the last bytes are.
    const other = createStreamRedactor(needles);
    const a = other.push(Buffer.from(`${"x".repeat(20_000)}sk-li`)).length;
    const b = createStreamRedactor(needles).push(Buffer.from(`${"x".repeat(20_000)}zz-zz`)).length;
    assert.equal(a, b);
    assert.ok(a > 0 && other.pending > 0);
    assert.equal(Buffer.concat([other.end()]).toString(), `${"x".repeat(20_000)}sk-li`.slice(a));
    r.close();
  });

  it("when the upstream pauses in the middle of a value, the rest is still redacted and the pause is reported", async () => {
    const released: Buffer[] = [];
    let wake: () => void = () => undefined;
    const r = createStreamRedactor(needles, {
      holdMs: 0,
      onRelease: (b) => {
        released.push(b);
        wake();
      },
    });
    const half = VALUE.length >> 1;
    assert.equal(r.push(Buffer.from(`x ${VALUE.slice(0, half)}`)).length, 0);
    await new Promise<void>((resolve) => (wake = resolve));
    const rest = Buffer.concat([r.push(Buffer.from(`${VALUE.slice(half)} y`)), r.end()]).toString();
    assert.equal(Buffer.concat(released).toString(), `x ${VALUE.slice(0, half)}`);
    assert.equal(rest, `${REDACTION_MARK} y`);
    assert.equal(r.split, true);
    assert.equal(r.redacted, true);
  });

  it("still passes text that only looks like part of a value", () => {
    const text = `sk-live/ab+cd=ef 42xy and ${encodeURIComponent("sk-live/ab+cd=ef")} and &amp; %41 \\u0041`;
    assert.equal(redactAll(text, needles), text);
  });
});

/** The secret an agent may use but not read: hex, so a character is one of 16. */
const SECRET = "c0ffee5a1d9b7e42";
const ALPHABET = "0123456789abcdef";

describe("redactor through the call handler and a real HTTPS upstream", () => {
  let upstream: TestUpstream;
  let client: Upstream;
  let release: () => void = () => undefined;
  let handler: ReturnType<typeof createCallHandler>;
  const channel = {
    agent: { clientId: "agent_oracle" },
    process: null,
    identification: Promise.resolve(),
    connectionId: "conn_oracle",
  };
  let nextId = 1;

  before(async () => {
    upstream = await startUpstream(await tempDir("piper-redactor-"));
    // An allowed API that answers with the request body it got, as it got it.
    upstream.routes.set("/echo", (r, res) => res.writeHead(200, { "content-type": "text/plain" }).end(r.body));
    // The same, streamed: the echo now, the rest when the test says so.
    upstream.routes.set("/echo-stream", async (r, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(r.body);
      await new Promise<void>((resolve) => (release = resolve));
      res.end("\n\n");
    });
    client = createUpstream({ extraCaPem: upstream.caPem });
    const terms: GrantTerms = {
      binding: "program",
      lifetime: { kind: "until_revoked" },
      mode: { kind: "use", destinations: [{ host: `127.0.0.1:${upstream.port}` }] },
      policy: null,
    };
    const grants: CallGrants = {
      get: () => Promise.resolve({ value: SECRET, grantId: "gr_oracle", terms, fromCache: true }),
    };
    handler = createCallHandler({
      now: Date.now,
      log: pino({ level: "silent" }),
      grants,
      upstream: client,
      recordUse: () => undefined,
    });
  });

  after(async () => {
    release();
    await client.close();
    await upstream.close();
  });

  /** Runs one call; `onFrame` sees each frame as it is sent. */
  async function run(
    path: string,
    body: string | null,
    auth: Call["auth"] = { bearer: "API_TOKEN" },
    onFrame?: (m: LinkMessage) => void,
  ): Promise<LinkMessage[]> {
    const frames: LinkMessage[] = [];
    const call: Call = {
      type: "call",
      id: nextId++,
      method: body === null ? "GET" : "POST",
      url: `${upstream.origin}${path}`,
      auth,
      wait: true,
      ...(body === null ? {} : { body: { text: body } }),
    };
    await handler(
      channel,
      call,
      (m) => {
        frames.push(m);
        onFrame?.(m);
      },
      new AbortController().signal,
    );
    return frames;
  }

  /** What the agent can observe of a call besides the bytes it sent itself: frame kinds, sizes, flags. */
  function observation(frames: LinkMessage[]): string {
    return JSON.stringify(
      frames.map((f) => {
        if (f.type === "call.chunk") return ["chunk", Buffer.from(f.data, "base64").length];
        if (f.type === "call.end") return ["end", f.bytes, f.redacted];
        if (f.type === "call.head")
          return ["head", f.status, f.statusText, f.redacted, f.headers.filter(([n]) => n !== "date")];
        return [f.type];
      }),
    );
  }

  /**
   * The attack: try every candidate for the next character; a candidate whose observation differs
   * from the most common one is a suspect, and the search goes on from each suspect (depth first,
   * within `budget` calls). Returns the longest string it reached and how many different
   * observations the first position gave (1: every candidate looked the same, so no number of
   * further calls can tell them apart).
   */
  async function attack(
    observe: (guess: string) => Promise<string>,
    maxDepth: number,
    budget: number,
  ): Promise<{ recovered: string; calls: number; distinct: number }> {
    let recovered = "";
    let calls = 0;
    let distinct = 0;
    const visit = async (known: string): Promise<void> => {
      if (known.length >= maxDepth || calls + ALPHABET.length > budget) return;
      const seen = new Map<string, string[]>();
      for (const c of ALPHABET) {
        const o = await observe(known + c);
        calls++;
        seen.set(o, [...(seen.get(o) ?? []), c]);
      }
      if (known === "") distinct = seen.size;
      const common = [...seen.entries()].sort((x, y) => y[1].length - x[1].length)[0]?.[0];
      for (const [o, cs] of seen) {
        if (o === common) continue;
        for (const c of cs) {
          if (known.length + 1 > recovered.length) recovered = known + c;
          await visit(known + c);
        }
      }
    };
    await visit("");
    return { recovered, calls, distinct };
  }

  it("an echoing API is no oracle: a right and a wrong guess look the same (whole answers)", async () => {
    // The redactor is at work on this route: the whole value is replaced.
    const full = await run("/echo", `pad ${SECRET}`);
    const body = Buffer.concat(
      full.flatMap((f) => (f.type === "call.chunk" ? [Buffer.from(f.data, "base64")] : [])),
    ).toString();
    assert.equal(body, `pad ${REDACTION_MARK}`);
    // The guess at the end of the answer, where a prefix-holding redactor would split it off.
    const result = await attack(
      async (guess) => observation(await run("/echo", `padding-${guess}`)),
      SECRET.length,
      300,
    );
    assert.equal(result.recovered, "", `recovered ${result.recovered.length} characters in ${result.calls} calls`);
    assert.equal(result.distinct, 1, "every candidate gave the same observation");
    // Also at the end of a larger answer (the window is passed on as more comes).
    const big = await attack(async (guess) => observation(await run("/echo", `${"x".repeat(40_000)}${guess}`)), 2, 64);
    assert.equal(big.recovered, "");
    assert.equal(big.distinct, 1);
  });

  it("a streaming echo is no oracle: what arrives before the upstream goes on does not depend on the guess", async () => {
    const observe = async (guess: string): Promise<string> => {
      const sent = `data: ${guess}`;
      let received = 0;
      let enough: () => void = () => undefined;
      const arrived = new Promise<void>((resolve) => (enough = resolve));
      const done = run("/echo-stream", sent, { bearer: "API_TOKEN" }, (m) => {
        if (m.type === "call.chunk") received += Buffer.from(m.data, "base64").length;
        if (received >= sent.length) enough();
      });
      // Until all of the echo has arrived, or long enough that a held-back piece shows.
      const bound = setTimeout(enough, 1500);
      await arrived;
      clearTimeout(bound);
      const before = received;
      release();
      const frames = await done;
      return JSON.stringify([
        before,
        observation(frames.filter((f) => f.type !== "call.chunk")),
        frames.reduce((n, f) => n + (f.type === "call.chunk" ? Buffer.from(f.data, "base64").length : 0), 0),
      ]);
    };
    const result = await attack(observe, 2, 64);
    assert.equal(result.recovered, "", `recovered ${result.recovered.length} characters in ${result.calls} calls`);
    assert.equal(result.distinct, 1);
  });

  it("redacts the URL after a same-origin redirect, header names and values, and keeps the status", async () => {
    const value = "sk_test_51Hx+R3d/act=0r";
    const terms: GrantTerms = {
      binding: "program",
      lifetime: { kind: "until_revoked" },
      mode: { kind: "read" },
      policy: null,
    };
    const own = createCallHandler({
      now: Date.now,
      log: pino({ level: "silent" }),
      grants: { get: () => Promise.resolve({ value, grantId: "gr_head", terms, fromCache: true }) },
      upstream: client,
      recordUse: () => undefined,
    });
    const target = new URL(`/echo/${value}/x`, upstream.origin);
    upstream.routes.set("/redirect", (r: Received, res: ServerResponse) => {
      const token = String(r.headers["authorization"] ?? "").replace(/^Bearer /, "");
      res.writeHead(302, { location: `/echo/${token}/x` }).end();
    });
    upstream.routes.set(target.pathname, (r: Received, res: ServerResponse) => {
      const token = String(r.headers["authorization"] ?? "").replace(/^Bearer /, "");
      res.setHeader(`x-key-${Buffer.from(token).toString("hex")}`, "named after the value");
      res.setHeader("x-lower", token.toLowerCase());
      res.setHeader("x-quoted", encodeURIComponent(token).toLowerCase());
      res.end("ok");
    });
    const frames: LinkMessage[] = [];
    await own(
      channel,
      {
        type: "call",
        id: nextId++,
        method: "GET",
        url: `${upstream.origin}/redirect`,
        auth: { bearer: "API_TOKEN" },
        wait: true,
      },
      (m) => frames.push(m),
      new AbortController().signal,
    );
    const head = frames.find((f) => f.type === "call.head");
    assert.ok(head?.type === "call.head", JSON.stringify(frames));
    assert.equal(upstream.received.at(-1)?.url, target.pathname, "the redirect was followed");
    assert.equal(head.status, 200);
    assert.equal(head.redacted, true);
    assert.ok(head.url.includes(REDACTION_MARK), head.url);
    assert.ok(head.headers.some(([n, v]) => n === "x-piper-link-redacted-name" && v === "named after the value"));
    assert.deepEqual(
      head.headers.find(([n]) => n === "x-lower"),
      ["x-lower", REDACTION_MARK],
    );
    assert.deepEqual(
      head.headers.find(([n]) => n === "x-quoted"),
      ["x-quoted", REDACTION_MARK],
    );
    const text = JSON.stringify(frames).toLowerCase();
    for (const form of [value, encodeURIComponent(value), Buffer.from(value).toString("hex"), target.pathname])
      assert.ok(!text.includes(form.toLowerCase()), form);
  });
});
