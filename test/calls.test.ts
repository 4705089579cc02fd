// Calls made for agents (issue 14): a real Link with its embedded authority (compiled CLI, real
// keyring), a real WebSocket agent, and a local HTTPS upstream with its own CA, trusted by the Link
// through PIPER_LINK_EXTRA_CA. Injections are checked on the upstream side; echoes are redacted;
// no frame the agent receives carries the value.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import dns from "node:dns";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import zlib from "node:zlib";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { z } from "zod";
import { RequestViewSchema } from "../src/shared/authority.js";
import { CallAuthSchema, REDACTION_MARK, type CallAuth } from "../src/shared/calls.js";
import { LinkError } from "../src/shared/errors.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import { destinationAllows, type GrantTerms } from "../src/shared/grant-terms.js";
import type { LinkMessage } from "../src/shared/protocol.js";
import type { CallGrants } from "../src/main/core/calls/call-grants.js";
import { createCallHandler } from "../src/main/core/calls/call-handler.js";
import { prepareRequest } from "../src/main/core/calls/injections.js";
import { createStreamRedactor, needlesFor, redactString } from "../src/main/core/calls/redactor.js";
import { createUpstream, isNonPublicAddress } from "../src/main/core/calls/upstream.js";
import { createPiperClient, PiperError } from "@piper-link/sdk";
import { BIN, cli, cliJson, newEnv, stopAll, type CliEnv } from "./cli-helpers.js";
import { startUpstream, type TestUpstream } from "./calls-upstream.js";
import { connectAgent, tempDir, waitFor, type TestAgent } from "./helpers.js";

after(stopAll);

const execFileAsync = promisify(execFile);

/** Characters that differ between plain, base64, URL and form encodings. */
const TOKEN = "sk-live/ab+cd=ef 42xyz";
const BASIC = "alice:pa55/word+x";

/** Every form of the values that must never reach the agent. */
const FORBIDDEN = [...needlesFor(TOKEN), ...needlesFor(BASIC, "basic")];

describe("redactor", () => {
  it("replaces a value and its encodings even when split into single bytes", () => {
    const text = `a ${TOKEN} b ${Buffer.from(TOKEN).toString("base64")} c ${encodeURIComponent(TOKEN)} d`;
    const r = createStreamRedactor(needlesFor(TOKEN));
    const out: Buffer[] = [];
    for (const byte of Buffer.from(text)) out.push(r.push(Buffer.from([byte])));
    out.push(r.end());
    const result = Buffer.concat(out).toString();
    assert.equal(result, `a ${REDACTION_MARK} b ${REDACTION_MARK} c ${REDACTION_MARK} d`);
    assert.equal(r.redacted, true);
  });

  it("also finds JSON with escaped slashes, and a basic value's user part when it is long enough", () => {
    assert.equal(
      redactString(`{"k":"${TOKEN.replaceAll("/", "\\/")}"}`, needlesFor(TOKEN)).text,
      `{"k":"${REDACTION_MARK}"}`,
    );
    // Stripe-style keys are the user of basic auth, with an empty password.
    assert.equal(
      redactString(
        "key sk_live_4eC39HqLyjWDarjtT1zdp7dc in the echo",
        needlesFor("sk_live_4eC39HqLyjWDarjtT1zdp7dc:", "basic"),
      ).text,
      `key ${REDACTION_MARK} in the echo`,
    );
    // A short user name is left alone (it would blank the word out of every answer); the password is not.
    assert.equal(
      redactString("hello admin, pw hunter2xx", needlesFor("admin:hunter2xx", "basic")).text,
      `hello admin, pw ${REDACTION_MARK}`,
    );
  });
});

describe("building a call's request", () => {
  const base = { type: "call" as const, id: 1, method: "POST", url: "https://api.example.com/x", wait: true };
  const values = new Map([["API_TOKEN", TOKEN]]);

  it("refuses prototype segments in a jsonField path even past the schema, and leaves Object.prototype alone", () => {
    for (const path of ["__proto__.polluted", "constructor.prototype.polluted", "x.__proto__.polluted"]) {
      const call = { ...base, body: { text: "{}" }, auth: { jsonField: { [path]: "API_TOKEN" } } };
      assert.throws(
        () => prepareRequest(call, new URL(call.url), values),
        (err: unknown) => err instanceof LinkError && err.code === "bad_request",
        path,
      );
      assert.equal(Object.hasOwn(Object.prototype, "polluted"), false, path);
    }
    // The schema refuses them first, with a sentence naming the rule.
    assert.equal(CallAuthSchema.safeParse({ jsonField: { "__proto__.x": "API_TOKEN" } }).success, false);
    assert.equal(CallAuthSchema.safeParse({ jsonField: { "auth.token": "API_TOKEN" } }).success, true);
  });
});

describe("path rules and query injection", () => {
  const mode: GrantTerms["mode"] = { kind: "use", destinations: [{ host: "api.example.com", path: "/allowed*" }] };
  it("match a path rule on the decoded, normalised path; an encoded slash or backslash matches no rule", () => {
    for (const path of [
      "/allowed/..%2Fecho",
      "/allowed/..%2fecho",
      "/allowed/..%5Cecho",
      "/allowed/%2e%2e/echo",
      "/allowed/../echo",
      "/allowed/x/..%2F..%2Fecho",
      "/allowed/%E0%A4%A",
      "/allowed/..;/echo",
      "/allowed/..;jsessionid=1/echo",
      "/allowed/%252e%252e/echo",
      "/allowed/%252F",
    ]) {
      const verdict = destinationAllows(mode, "GET", new URL(`https://api.example.com${path}`));
      assert.equal(verdict.ok, false, path);
    }
    for (const path of ["/allowed", "/allowed/x", "/%61llowed/x", "/allowed/a%20b"])
      assert.equal(destinationAllows(mode, "GET", new URL(`https://api.example.com${path}`)).ok, true, path);
  });

  it("append the injected parameter to the agent's query bytes as they are (signed URLs), and refuse a name the URL already has", () => {
    const base = { type: "call" as const, id: 1, method: "GET", wait: true, auth: { query: { key: "API_TOKEN" } } };
    const values = new Map([["API_TOKEN", TOKEN]]);
    const signed = "https://api.example.com/e?x=a%20b&y=~ok*&sig=Zm9v%2Bbar";
    const prepared = prepareRequest({ ...base, url: signed }, new URL(signed), values);
    assert.equal(prepared.url.search, `?x=a%20b&y=~ok*&sig=Zm9v%2Bbar&key=${encodeURIComponent(TOKEN)}`);
    assert.equal(
      prepareRequest({ ...base, url: "https://api.example.com/e" }, new URL("https://api.example.com/e"), values).url
        .search,
      `?key=${encodeURIComponent(TOKEN)}`,
    );
    // A redirect's target that names the parameter gets the injected value only.
    assert.equal(
      prepared.injectQuery(new URL("https://api.example.com/n?key=old&z=1")).search,
      `?z=1&key=${encodeURIComponent(TOKEN)}`,
    );
    const twice = "https://api.example.com/e?key=mine";
    assert.throws(
      () => prepareRequest({ ...base, url: twice }, new URL(twice), values),
      (err: unknown) => err instanceof LinkError && err.code === "bad_request",
    );
  });
});

describe("calls through a real Link (embedded authority, HTTPS upstream with its own CA)", () => {
  let upstream: TestUpstream;
  let e: CliEnv;
  let agent: TestAgent;
  let linkUrl = "";
  let linkPid = 0;
  const raw: string[] = [];
  let nextId = 1;

  before(async () => {
    upstream = await startUpstream(await tempDir("piper-calls-ca-"));
    // The upstream answers with what it received, so echoes of every injection come back.
    upstream.routes.set("/echo", (r, res) => {
      res.setHeader("x-echo-auth", String(r.headers["authorization"] ?? ""));
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(r));
    });
    e = await newEnv();
    e.env["PIPER_LINK_EXTRA_CA"] = upstream.caFile;
    const status = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
    for (const [name, value] of [
      ["API_TOKEN", TOKEN],
      ["BASIC_CRED", BASIC],
    ] as const) {
      const set = cli(e, ["secrets", "set", name], `${value}\n`);
      assert.equal(set.code, 0, set.stderr);
    }
    linkUrl = status.url;
    linkPid = status.pid;
    agent = await connectAgent(status.url);
    agent.ws.on("message", (data: Buffer) => raw.push(data.toString("utf8")));
    assert.equal((await agent.hello(0, "agent_calls")).type, "welcome");
  });

  after(async () => {
    agent.close();
    await upstream.close();
  });

  /** Sends a call and collects its frames until the end or an error. */
  async function call(
    frame: { url: string; method?: string; headers?: Record<string, string>; body?: { text: string }; auth: CallAuth },
    onPending?: (requestId: string) => void,
  ): Promise<{ frames: LinkMessage[]; body: string }> {
    const id = nextId++;
    agent.send({ ...frame, type: "call", id });
    const frames: LinkMessage[] = [];
    for (;;) {
      const m = await agent.next((x) => "id" in x && x.id === id, 20_000);
      frames.push(m);
      if (m.type === "pending") onPending?.(m.requestId);
      if (m.type === "call.end" || m.type === "error") break;
    }
    const body = Buffer.concat(
      frames.flatMap((f) => (f.type === "call.chunk" ? [Buffer.from(f.data, "base64")] : [])),
    ).toString("utf8");
    return { frames, body };
  }

  const approveAll = (): void => {
    for (const r of cliJson(e, ["requests"], z.array(RequestViewSchema)))
      assert.equal(cli(e, ["approve", r.id, "--until-revoked"]).code, 0);
  };

  it("asks the person first, naming the exact method and URL; then every injection style reaches the upstream and every echo is redacted", async () => {
    const url = `${upstream.origin}/echo?page=2`;
    const first = call({ method: "POST", url, auth: { bearer: "API_TOKEN" }, body: { text: "{}" } }, () => {
      const pending = cliJson(e, ["requests"], z.array(RequestViewSchema));
      assert.equal(pending.length, 1);
      assert.match(pending[0]?.reason ?? "", new RegExp(`POST ${url.replace(/[.?]/g, "\\$&")}`));
      approveAll();
    });
    const { frames } = await first;
    assert.equal(frames[0]?.type, "pending");
    assert.equal(frames.at(-1)?.type, "call.end");
    // bearer
    assert.equal(upstream.received.at(-1)?.headers["authorization"], `Bearer ${TOKEN}`);

    // basic (needs its own approval)
    const basic = await call({ url: `${upstream.origin}/echo`, auth: { basic: "BASIC_CRED" } }, () => approveAll());
    assert.equal(basic.frames.at(-1)?.type, "call.end");
    assert.equal(upstream.received.at(-1)?.headers["authorization"], `Basic ${Buffer.from(BASIC).toString("base64")}`);

    // header + query + jsonField, combined
    const combined = await call({
      method: "POST",
      url: `${upstream.origin}/echo?keep=1`,
      headers: { "X-Trace": "t1" },
      body: { text: JSON.stringify({ model: "m", auth: { other: 1 } }) },
      auth: {
        header: { "X-Api-Key": "API_TOKEN" },
        query: { key: "API_TOKEN" },
        jsonField: { "auth.token": "API_TOKEN" },
      },
    });
    const got = upstream.received.at(-1);
    assert.ok(got);
    assert.equal(got.headers["x-api-key"], TOKEN);
    assert.equal(got.headers["x-trace"], "t1");
    assert.equal(new URL(got.url, "https://x").searchParams.get("key"), TOKEN);
    assert.equal(new URL(got.url, "https://x").searchParams.get("keep"), "1");
    assert.deepEqual(JSON.parse(got.body), { model: "m", auth: { other: 1, token: TOKEN } });
    const end = combined.frames.at(-1);
    assert.ok(end?.type === "call.end");
    assert.equal(end.redacted, true);
    assert.ok(combined.body.includes(REDACTION_MARK));
    const head = combined.frames.find((f) => f.type === "call.head");
    assert.ok(head?.type === "call.head");
    assert.equal(head.status, 200);
    assert.equal(head.url, `${upstream.origin}/echo`, "the answer's URL carries no query values");

    // formField
    await call({
      method: "POST",
      url: `${upstream.origin}/echo`,
      body: { text: "a=1" },
      auth: { formField: { token: "API_TOKEN" } },
    });
    const form = upstream.received.at(-1);
    assert.equal(form?.headers["content-type"], "application/x-www-form-urlencoded");
    assert.equal(new URLSearchParams(form.body).get("token"), TOKEN);
    assert.equal(new URLSearchParams(form.body).get("a"), "1");
  });

  it("redacts plain, base64 and URL-encoded echoes written in pieces, in headers and body", async () => {
    upstream.routes.set("/leak", async (_r, res) => {
      res.setHeader("x-leak", `k=${encodeURIComponent(TOKEN)}`);
      res.writeHead(200, { "content-type": "text/plain" });
      const text = `plain ${TOKEN} b64 ${Buffer.from(TOKEN).toString("base64")} url ${encodeURIComponent(TOKEN)} end`;
      for (let at = 0; at < text.length; at += 5) {
        await new Promise<void>((resolve) => res.write(text.slice(at, at + 5), () => resolve()));
      }
      res.end();
    });
    const { frames, body } = await call({ url: `${upstream.origin}/leak`, auth: { bearer: "API_TOKEN" } });
    assert.equal(body, `plain ${REDACTION_MARK} b64 ${REDACTION_MARK} url ${REDACTION_MARK} end`);
    const head = frames.find((f) => f.type === "call.head");
    assert.ok(head?.type === "call.head");
    assert.deepEqual(
      head.headers.find(([n]) => n === "x-leak"),
      ["x-leak", `k=${REDACTION_MARK}`],
    );
    assert.equal(head.redacted, true);
  });

  it("asks for an uncompressed answer whatever the agent sends, and decodes one compressed anyway, so echoes are still redacted", async () => {
    const echo = `{"token":"${TOKEN}"}`;
    for (const [coding, encode] of [
      ["gzip", (b: Buffer) => zlib.gzipSync(b)],
      ["br", (b: Buffer) => zlib.brotliCompressSync(b)],
      ["deflate", (b: Buffer) => zlib.deflateSync(b)],
    ] as const) {
      upstream.routes.set(`/${coding}`, (_r, res) => {
        // Compresses although asked not to, as some servers do.
        const body = encode(Buffer.from(echo));
        res.writeHead(200, {
          "content-type": "application/json",
          "content-encoding": coding,
          "content-length": body.length,
        });
        res.end(body);
      });
      const { frames, body } = await call({
        url: `${upstream.origin}/${coding}`,
        headers: { "Accept-Encoding": "gzip, br" },
        auth: { bearer: "API_TOKEN" },
      });
      assert.equal(
        upstream.received.at(-1)?.headers["accept-encoding"],
        "identity",
        "the agent's Accept-Encoding is not passed on",
      );
      assert.equal(body, `{"token":"${REDACTION_MARK}"}`, coding);
      const head = frames.find((f) => f.type === "call.head");
      assert.ok(head?.type === "call.head");
      assert.equal(
        head.headers.find(([n]) => n === "content-encoding"),
        undefined,
        "the agent gets the decoded body, so no Content-Encoding",
      );
      assert.equal(
        head.headers.find(([n]) => n === "content-length"),
        undefined,
      );
    }
    // An encoding that cannot be decoded (and so not checked) is not passed on.
    upstream.routes.set("/zstd", (_r, res) => {
      res.writeHead(200, { "content-encoding": "zstd" });
      res.end(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
    });
    const { frames } = await call({ url: `${upstream.origin}/zstd`, auth: { bearer: "API_TOKEN" } });
    const error = frames.find((f) => f.type === "error");
    assert.ok(error?.type === "error");
    assert.equal(error.code, "upstream_unavailable");
    assert.match(error.message, /zstd encoding/);
  });

  it("streams an SSE answer: the agent has the first event before the upstream sends the last", async () => {
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    let lastSent = false;
    upstream.routes.set("/sse", async (_r, res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.write("data: one\n\n");
      await released;
      res.write("data: two\n\n");
      lastSent = true;
      res.end("data: three\n\n");
    });
    const id = nextId++;
    agent.send({ type: "call", id, url: `${upstream.origin}/sse`, auth: { bearer: "API_TOKEN" } });
    const firstChunk = await agent.next((m) => "id" in m && m.id === id && m.type === "call.chunk", 20_000);
    assert.ok(firstChunk.type === "call.chunk");
    assert.equal(Buffer.from(firstChunk.data, "base64").toString(), "data: one\n\n");
    assert.equal(lastSent, false, "the first event arrived while the upstream still held the rest");
    release();
    const endFrame = await agent.next((m) => "id" in m && m.id === id && m.type === "call.end", 20_000);
    assert.ok(endFrame.type === "call.end");
    assert.equal(endFrame.redacted, false);
  });

  it("follows a same-origin redirect with the credential, and hands a cross-origin one back without following it", async () => {
    upstream.routes.set("/moved", (_r, res) => res.writeHead(302, { location: "/echo" }).end());
    upstream.routes.set("/away", (_r, res) =>
      res.writeHead(302, { location: `https://localhost:${upstream.port}/echo` }).end(),
    );
    const same = await call({ url: `${upstream.origin}/moved`, auth: { bearer: "API_TOKEN" } });
    const head = same.frames.find((f) => f.type === "call.head");
    assert.ok(head?.type === "call.head");
    assert.equal(head.status, 200);
    assert.equal(upstream.received.at(-1)?.url, "/echo");
    assert.equal(upstream.received.at(-1)?.headers["authorization"], `Bearer ${TOKEN}`);

    const before = upstream.received.length;
    const other = await call({ url: `${upstream.origin}/away`, auth: { bearer: "API_TOKEN" } });
    const otherHead = other.frames.find((f) => f.type === "call.head");
    assert.ok(otherHead?.type === "call.head");
    assert.equal(otherHead.status, 302);
    assert.equal(upstream.received.length, before + 1, "the other origin was never called");
  });

  it("refuses http:, a URL with user info, and headers the Link sets", async () => {
    for (const frame of [
      { url: `http://127.0.0.1:${upstream.port}/echo`, auth: { bearer: "API_TOKEN" } },
      { url: `https://u:p@127.0.0.1:${upstream.port}/echo`, auth: { bearer: "API_TOKEN" } },
      { url: `${upstream.origin}/echo`, headers: { Host: "evil.example" }, auth: { bearer: "API_TOKEN" } },
      { url: `${upstream.origin}/echo`, headers: { Authorization: "x" }, auth: { bearer: "API_TOKEN" } },
      { url: `${upstream.origin}/echo`, auth: {} },
    ]) {
      const { frames } = await call(frame);
      const last = frames.at(-1);
      assert.ok(last?.type === "error");
      assert.equal(last.code, "bad_request", JSON.stringify(frame));
    }
  });

  it("refuses a jsonField path through a prototype (bad_request) and keeps serving: calls, status and stop still work", async () => {
    const before = upstream.received.length;
    for (const path of ["__proto__.polluted", "constructor.prototype.polluted", "a.__proto__.polluted", "prototype"]) {
      const { frames } = await call({
        method: "POST",
        url: `${upstream.origin}/echo`,
        body: { text: "{}" },
        auth: { jsonField: { [path]: "API_TOKEN" } },
      });
      const last = frames.at(-1);
      assert.ok(last?.type === "error", `${path}: ${JSON.stringify(frames)}`);
      assert.equal(last.code, "bad_request", path);
      assert.match(last.message, /__proto__, prototype or constructor/);
    }
    assert.equal(upstream.received.length, before, "nothing was sent for the refused paths");
    // A body's own __proto__ key is the agent's data: passed on as written, next to the injection.
    await call({
      method: "POST",
      url: `${upstream.origin}/echo`,
      body: { text: '{"__proto__":{"keep":1}}' },
      auth: { jsonField: { "auth.token": "API_TOKEN" } },
    });
    const sent = upstream.received.at(-1);
    assert.ok(sent);
    assert.equal(sent.body, `{"__proto__":{"keep":1},"auth":{"token":${JSON.stringify(TOKEN)}}}`);
    // The Link still serves: another call, and the control commands.
    const after = await call({ url: `${upstream.origin}/echo`, auth: { bearer: "API_TOKEN" } });
    assert.equal(after.frames.at(-1)?.type, "call.end");
    assert.ok(cliJson(e, ["status"], LinkStatusSchema).pid > 0);
    agent.send({ type: "grants", id: nextId++ });
    assert.equal((await agent.next((m) => m.type === "grants.list", 20_000)).type, "grants.list");
  });

  it("an agent that does not read its answers holds the upstream back, not the Link's memory; at most 16 calls run at once per connection", async () => {
    const size = 30 * 1024 * 1024;
    const block = Buffer.alloc(64 * 1024, "a");
    let written = 0;
    let started = 0;
    upstream.routes.set("/big", async (_r, res) => {
      started++;
      res.writeHead(200, { "content-type": "text/plain" });
      for (let sent = 0; sent < size && !res.destroyed; sent += block.length) {
        // Written as fast as the Link takes it, no faster.
        if (!res.write(block)) await new Promise((resolve) => (res.once("drain", resolve), res.once("close", resolve)));
        written += block.length;
      }
      res.end();
    });
    const rssOf = async (): Promise<number> =>
      Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${linkPid}/status`, "utf8"))?.[1] ?? Number.NaN) * 1024;
    const slow = await connectAgent(linkUrl);
    try {
      assert.equal((await slow.hello(0, "agent_calls")).type, "welcome");
      const rssBefore = await rssOf();
      // The agent stops reading its socket, then asks for 20 answers of 30 MB.
      slow.ws.pause();
      const ids = Array.from({ length: 20 }, (_, i) => 5000 + i);
      for (const id of ids)
        slow.send({ type: "call", id, url: `${upstream.origin}/big`, auth: { bearer: "API_TOKEN" } });
      await waitFor(() => started >= 16, "16 calls at the upstream", 60_000);
      // Until the upstream can write no more (or, without flow control, has written everything).
      let last = -1;
      let still = 0;
      await waitFor(
        async () => {
          still = written === last ? still + 1 : 0;
          last = written;
          await new Promise((resolve) => setTimeout(resolve, 500));
          return still >= 4 || written >= 16 * size;
        },
        "the upstream to stall",
        120_000,
      );
      const grown = (await rssOf()) - rssBefore;
      assert.ok(
        written < 16 * size,
        `the upstream wrote all ${written} bytes: the Link read answers nobody was reading`,
      );
      assert.ok(grown < 150 * 1024 * 1024, `the Link's RSS grew by ${Math.round(grown / 1048576)} MB`);
      assert.equal(started, 16, "calls beyond 16 never reached the upstream");
      for (const id of ids) slow.send({ type: "cancel", id });
      slow.ws.resume();
      await waitFor(
        () => slow.received.filter((m) => m.type === "error" && m.code === "rate_limited").length === 4,
        "4 calls refused with rate_limited",
        60_000,
      );
    } finally {
      slow.close();
    }
    // The Link still serves.
    assert.equal(
      (await call({ url: `${upstream.origin}/echo`, auth: { bearer: "API_TOKEN" } })).frames.at(-1)?.type,
      "call.end",
    );
  });

  it("answers upstream_unavailable (retryable) when the upstream is down", async () => {
    const down = await startUpstream(await tempDir("piper-calls-down-"));
    const port = down.port;
    await down.close();
    const { frames } = await call({ url: `https://127.0.0.1:${port}/x`, auth: { bearer: "API_TOKEN" } });
    const last = frames.at(-1);
    assert.ok(last?.type === "error");
    assert.equal(last.code, "upstream_unavailable");
    assert.equal(last.retryable, true);
  });

  it("SDK: piper.fetch returns a standard Response whose body streams, with echoes redacted", async () => {
    const piper = createPiperClient({ clientId: "agent_calls", linkUrl, fallbackToEnv: false });
    try {
      const res = await piper.fetch(`${upstream.origin}/echo`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
        auth: { bearer: "API_TOKEN" },
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-echo-auth"), `Bearer ${REDACTION_MARK}`);
      const text = await res.text();
      assert.ok(text.includes(REDACTION_MARK));
      for (const needle of FORBIDDEN) assert.ok(!text.includes(needle));
      await assert.rejects(
        piper.fetch("http://127.0.0.1:1/x", { auth: { bearer: "API_TOKEN" } }),
        (err: unknown) => err instanceof PiperError && err.code === "bad_request",
      );
    } finally {
      piper.close();
    }
  });

  it("CLI: piper-link call --json prints the redacted answer; the upstream got the header injection", async () => {
    // Async: the upstream lives in this process and must keep answering while the CLI runs.
    const running = execFileAsync(
      process.execPath,
      [
        BIN,
        "call",
        `${upstream.origin}/echo`,
        "--header",
        "X-Api-Key=API_TOKEN",
        "-H",
        "X-Plain: yes",
        "--client-id",
        "agent_cli",
        "--json",
      ],
      { env: e.env, encoding: "utf8", timeout: 60_000 },
    );
    // The CLI is another program: its first call waits for the person, who approves it here.
    await waitFor(
      () => cliJson(e, ["requests"], z.array(RequestViewSchema)).some((r) => r.agentClientId === "agent_cli"),
      "the CLI's request",
      20_000,
    );
    // It asks for the program that ran it (this test), not for piper-link itself.
    const asked = cliJson(e, ["requests"], z.array(RequestViewSchema)).find((r) => r.agentClientId === "agent_cli");
    assert.equal(asked?.process?.pid, process.pid);
    approveAll();
    const { stdout } = await running;
    const out = z.object({ status: z.number(), body: z.string(), redacted: z.boolean() }).parse(JSON.parse(stdout));
    assert.equal(out.status, 200);
    assert.equal(out.redacted, true);
    assert.equal(upstream.received.at(-1)?.headers["x-api-key"], TOKEN);
    assert.equal(upstream.received.at(-1)?.headers["x-plain"], "yes");
    for (const needle of FORBIDDEN) assert.ok(!stdout.includes(needle));
    // Errors with --json are one JSON document too, with the documented exit codes (2: usage).
    const noAuth = cli(e, ["call", `${upstream.origin}/echo`, "--client-id", "agent_cli", "--json"]);
    assert.equal(noAuth.code, 2);
    assert.equal(
      z.object({ error: z.string(), message: z.string() }).parse(JSON.parse(noAuth.stdout)).error,
      "bad_request",
    );
  });

  it("a call outside a use-only grant's hosts fails with destination_not_allowed, or, when the agent asks, becomes a request naming the method and URL", async () => {
    const other = await connectAgent(linkUrl);
    try {
      assert.equal((await other.hello(0, "agent_dest")).type, "welcome");
      let id = 1000;
      const send = async (
        url: string,
        askIfRefused: boolean,
        onPending?: (requestId: string) => void,
      ): Promise<LinkMessage[]> => {
        const callId = id++;
        other.send({
          type: "call",
          id: callId,
          method: "GET",
          url,
          auth: { bearer: "API_TOKEN" },
          ...(askIfRefused ? { askIfRefused: true } : {}),
        });
        const frames: LinkMessage[] = [];
        for (;;) {
          const m = await other.next((x) => "id" in x && x.id === callId, 20_000);
          frames.push(m);
          if (m.type === "pending") onPending?.(m.requestId);
          if (m.type === "call.end" || m.type === "error") return frames;
        }
      };
      const inside = `https://127.0.0.1:${upstream.port}/echo`;
      const outside = `https://localhost:${upstream.port}/echo`;
      // Approved to use only, towards 127.0.0.1:port.
      const first = await send(inside, false, (requestId) => {
        assert.equal(
          cli(e, ["approve", requestId, "--until-revoked", "--use-only", "--host", `127.0.0.1:${upstream.port}`]).code,
          0,
        );
      });
      assert.equal(first.at(-1)?.type, "call.end");
      // localhost is another host: refused at once (from the Link's cache of the grant, too)…
      const refused = await send(outside, false);
      assert.ok(refused[0]?.type === "error");
      assert.equal(refused[0].code, "destination_not_allowed");
      // …or, when the agent asks, a request that shows the exact method and URL.
      let shown = "";
      const asked = await send(outside, true, (requestId) => {
        const request = cliJson(e, ["requests"], z.array(RequestViewSchema)).find((r) => r.id === requestId);
        shown = request?.reason ?? "";
        assert.equal(
          cli(e, ["approve", requestId, "--until-revoked", "--use-only", "--host", `localhost:${upstream.port}`]).code,
          0,
        );
      });
      assert.match(shown, new RegExp(`GET ${outside.replace(/[.]/g, "\\.")}`));
      assert.equal(asked.at(-1)?.type, "call.end");
      const again = await send(outside, false);
      assert.equal(again.at(-1)?.type, "call.end", "the new grant serves localhost from now on");
    } finally {
      other.close();
    }
  });

  it("a use-only grant approved with --method GET allows reads and refuses writes to the same host (the route to store a value and read it back in pieces)", async () => {
    upstream.routes.set("/store", (_r, res) => res.end("stored"));
    const other = await connectAgent(linkUrl);
    try {
      assert.equal((await other.hello(0, "agent_method")).type, "welcome");
      let id = 2000;
      const send = async (method: string, onPending?: (requestId: string) => void): Promise<LinkMessage[]> => {
        const callId = id++;
        other.send({
          type: "call",
          id: callId,
          method,
          url: `${upstream.origin}/store`,
          auth: { bearer: "API_TOKEN" },
          ...(method === "GET" ? {} : { body: { text: "x" } }),
        });
        const frames: LinkMessage[] = [];
        for (;;) {
          const m = await other.next((x) => "id" in x && x.id === callId, 20_000);
          frames.push(m);
          if (m.type === "pending") onPending?.(m.requestId);
          if (m.type === "call.end" || m.type === "error") return frames;
        }
      };
      // Usage errors first: --method needs --use-only, and a rule's method must be one of --method.
      assert.equal(cli(e, ["approve", "req_x", "--method", "GET"]).code, 2);
      const read = await send("GET", (requestId) => {
        assert.equal(
          cli(e, [
            "approve",
            requestId,
            "--until-revoked",
            "--use-only",
            "--host",
            `127.0.0.1:${upstream.port}`,
            "--rule",
            "POST /store",
            "--method",
            "GET",
          ]).code,
          2,
        );
        assert.equal(
          cli(e, [
            "approve",
            requestId,
            "--until-revoked",
            "--use-only",
            "--host",
            `127.0.0.1:${upstream.port}`,
            "--method",
            "get",
          ]).code,
          0,
        );
      });
      assert.equal(read.at(-1)?.type, "call.end");
      const before = upstream.received.length;
      for (const method of ["PUT", "POST", "PATCH", "DELETE"]) {
        const refused = await send(method);
        assert.ok(refused[0]?.type === "error", method);
        assert.equal(refused[0].code, "destination_not_allowed", method);
      }
      assert.equal(upstream.received.length, before, "no write reached the upstream");
      const grant = cliJson(
        e,
        ["grants"],
        z.array(z.looseObject({ agentClientId: z.string(), mode: z.unknown().optional() })),
      ).find((g) => g.agentClientId === "agent_method");
      assert.deepEqual(grant?.mode, {
        kind: "use",
        destinations: [{ host: `127.0.0.1:${upstream.port}`, method: "GET" }],
      });
    } finally {
      other.close();
    }
  });

  it("never sent the agent a frame that contains a value in any form", () => {
    assert.ok(raw.length > 20);
    for (const frame of raw) {
      const parsed = JSON.parse(frame) as { type: string; data?: string };
      const texts = [
        frame,
        parsed.type === "call.chunk" && parsed.data !== undefined
          ? Buffer.from(parsed.data, "base64").toString("utf8")
          : "",
      ];
      for (const text of texts)
        for (const needle of FORBIDDEN)
          assert.ok(!text.includes(needle), `a frame carried ${JSON.stringify(needle)}: ${text.slice(0, 200)}`);
    }
  });
});

describe("grant terms on calls (use-only grants)", () => {
  it("classes loopback, link-local, private, CGNAT, unspecified and IPv4-mapped addresses as not public", () => {
    for (const a of [
      "127.0.0.1",
      "127.9.9.9",
      "10.1.2.3",
      "172.16.0.1",
      "172.31.255.255",
      "192.168.1.1",
      "100.64.0.1",
      "169.254.169.254",
      "0.0.0.0",
      "::",
      "::1",
      "fe80::1",
      "fd00::1",
      "fc00::1",
      "::ffff:127.0.0.1",
      "::ffff:10.0.0.1",
      "::ffff:7f00:1",
      "not-an-address",
    ]) {
      assert.equal(isNonPublicAddress(a), true, a);
    }
    for (const a of ["8.8.8.8", "172.32.0.1", "100.128.0.1", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
      assert.equal(isNonPublicAddress(a), false, a);
    // A wildcard names host names, not addresses.
    const mode: GrantTerms["mode"] = { kind: "use", destinations: [{ host: "*.0.0.1:8443" }] };
    assert.equal(destinationAllows(mode, "GET", new URL("https://127.0.0.1:8443/")).ok, false);
  });

  it("never sends a secret to a name that resolves to this machine or a private network, checked at connect time; an IP literal or localhost in the grant still works", async () => {
    const upstream = await startUpstream(await tempDir("piper-calls-dns-"));
    upstream.routes.set("/echo", (_r, res) => res.end("ok"));
    // The names of a test domain resolve as an attacker's DNS would answer: to loopback, or to an
    // IPv4-mapped IPv6 loopback address. The connector's own check sees these addresses.
    const answers: Record<string, Array<{ address: string; family: number }>> = {
      "api.calls.test": [{ address: "127.0.0.1", family: 4 }],
      "mapped.calls.test": [{ address: "::ffff:127.0.0.1", family: 6 }],
      "mixed.calls.test": [
        { address: "8.8.8.8", family: 4 },
        { address: "127.0.0.1", family: 4 },
      ],
    };
    const client = createUpstream({
      extraCaPem: upstream.caPem,
      resolve: async (hostname) => answers[hostname] ?? (await dns.promises.lookup(hostname, { all: true })),
    });
    const port = upstream.port;
    const run = async (terms: GrantTerms, url: string): Promise<LinkMessage[]> => {
      const grants: CallGrants = {
        get: () => Promise.resolve({ value: TOKEN, grantId: "gr_dns", terms, fromCache: false }),
      };
      const handler = createCallHandler({
        now: Date.now,
        log: pino({ level: "silent" }),
        grants,
        upstream: client,
        recordUse: () => undefined,
      });
      const frames: LinkMessage[] = [];
      await handler(
        {
          agent: { clientId: "agent_dns" },
          process: null,
          identification: Promise.resolve(),
          connectionId: "conn_dns",
        },
        { type: "call", id: 1, method: "GET", url, auth: { bearer: "API_TOKEN" }, wait: true },
        (m) => frames.push(m),
        new AbortController().signal,
      );
      return frames;
    };
    const use = (host: string): GrantTerms => ({
      binding: "program",
      lifetime: { kind: "until_revoked" },
      mode: { kind: "use", destinations: [{ host }] },
      policy: null,
    });
    const read: GrantTerms = {
      binding: "program",
      lifetime: { kind: "until_revoked" },
      mode: { kind: "read" },
      policy: null,
    };
    try {
      for (const [terms, host] of [
        [use(`*.calls.test:${port}`), "api.calls.test"],
        [use(`*.calls.test:${port}`), "mapped.calls.test"],
        [use(`*.calls.test:${port}`), "mixed.calls.test"],
        // A read grant's call follows the same address rule.
        [read, "api.calls.test"],
      ] as const) {
        const frames = await run(terms, `https://${host}:${port}/echo`);
        const last = frames.at(-1);
        assert.ok(last?.type === "error", `${host}: ${JSON.stringify(frames)}`);
        assert.equal(last.code, "destination_not_allowed", host);
        assert.match(last.message, /resolves to .*(127\.0\.0\.1)/);
      }
      assert.equal(upstream.received.length, 0, "no request (and no bearer) reached the loopback upstream");
      // Named literally, by the URL and the grant: allowed.
      assert.equal((await run(use(`127.0.0.1:${port}`), `https://127.0.0.1:${port}/echo`)).at(-1)?.type, "call.end");
      assert.equal((await run(use(`localhost:${port}`), `https://localhost:${port}/echo`)).at(-1)?.type, "call.end");
      assert.equal(upstream.received.length, 2);
      assert.equal(upstream.received.at(-1)?.headers["authorization"], `Bearer ${TOKEN}`);
    } finally {
      await client.close();
      await upstream.close();
    }
  });

  it("refuses a compressed or archived answer without Content-Encoding under a use-only grant (by type, or by its first bytes); a read grant's call passes it", async () => {
    const upstream = await startUpstream(await tempDir("piper-calls-archive-"));
    const gz = zlib.gzipSync(Buffer.from(`{"token":"${TOKEN}"}`));
    const zip = Buffer.concat([Buffer.from("PK\x03\x04", "latin1"), Buffer.from(`stored ${TOKEN}`)]);
    const routes: Record<string, { type: string; body: Buffer }> = {
      "/typed": { type: "application/gzip", body: Buffer.from("anything") },
      "/docx": {
        type: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        body: Buffer.from("anything"),
      },
      "/untyped": { type: "application/octet-stream", body: gz },
      "/text-zip": { type: "text/plain", body: zip },
      "/plain": { type: "text/plain", body: Buffer.from("BZh is just text, PK too") },
    };
    for (const [path, r] of Object.entries(routes))
      upstream.routes.set(path, (_q, res) => res.writeHead(200, { "content-type": r.type }).end(r.body));
    const client = createUpstream({ extraCaPem: upstream.caPem });
    const run = async (mode: GrantTerms["mode"], path: string): Promise<LinkMessage[]> => {
      const terms: GrantTerms = { binding: "program", lifetime: { kind: "until_revoked" }, mode, policy: null };
      const grants: CallGrants = {
        get: () => Promise.resolve({ value: TOKEN, grantId: "gr_zip", terms, fromCache: false }),
      };
      const handler = createCallHandler({
        now: Date.now,
        log: pino({ level: "silent" }),
        grants,
        upstream: client,
        recordUse: () => undefined,
      });
      const frames: LinkMessage[] = [];
      await handler(
        {
          agent: { clientId: "agent_zip" },
          process: null,
          identification: Promise.resolve(),
          connectionId: "conn_zip",
        },
        {
          type: "call",
          id: 1,
          method: "GET",
          url: `${upstream.origin}${path}`,
          auth: { bearer: "API_TOKEN" },
          wait: true,
        },
        (m) => frames.push(m),
        new AbortController().signal,
      );
      return frames;
    };
    const useOnly: GrantTerms["mode"] = { kind: "use", destinations: [{ host: `127.0.0.1:${upstream.port}` }] };
    try {
      for (const path of ["/typed", "/docx", "/untyped", "/text-zip"]) {
        const frames = await run(useOnly, path);
        const last = frames.at(-1);
        assert.ok(last?.type === "error", `${path}: ${JSON.stringify(frames)}`);
        assert.equal(last.code, "upstream_unavailable", path);
        assert.match(last.message, /cannot check for your secrets/);
        assert.equal(
          frames.filter((f) => f.type === "call.chunk").length,
          0,
          `${path}: no byte of it reached the agent`,
        );
      }
      const plain = await run(useOnly, "/plain");
      assert.equal(plain.at(-1)?.type, "call.end");
      // A read grant: the agent may read the value anyway, so the bytes pass as they are.
      const passed = await run({ kind: "read" }, "/untyped");
      assert.equal(passed.at(-1)?.type, "call.end");
      assert.deepEqual(
        Buffer.concat(passed.flatMap((f) => (f.type === "call.chunk" ? [Buffer.from(f.data, "base64")] : []))),
        gz,
      );
    } finally {
      await client.close();
      await upstream.close();
    }
  });

  it("refuses /allowed/..%2Fecho under an /allowed* rule: nothing reaches the upstream", async () => {
    const upstream = await startUpstream(await tempDir("piper-calls-path-"));
    upstream.routes.set("/allowed/x", (_r, res) => res.end("ok"));
    const client = createUpstream({ extraCaPem: upstream.caPem });
    const terms: GrantTerms = {
      binding: "program",
      lifetime: { kind: "until_revoked" },
      mode: { kind: "use", destinations: [{ host: `127.0.0.1:${upstream.port}`, path: "/allowed*" }] },
      policy: null,
    };
    const grants: CallGrants = {
      get: () => Promise.resolve({ value: TOKEN, grantId: "gr_path", terms, fromCache: false }),
    };
    const handler = createCallHandler({
      now: Date.now,
      log: pino({ level: "silent" }),
      grants,
      upstream: client,
      recordUse: () => undefined,
    });
    const run = async (path: string): Promise<LinkMessage[]> => {
      const frames: LinkMessage[] = [];
      await handler(
        {
          agent: { clientId: "agent_path" },
          process: null,
          identification: Promise.resolve(),
          connectionId: "conn_path",
        },
        {
          type: "call",
          id: 1,
          method: "GET",
          url: `${upstream.origin}${path}`,
          auth: { bearer: "API_TOKEN" },
          wait: true,
        },
        (m) => frames.push(m),
        new AbortController().signal,
      );
      return frames;
    };
    try {
      const refused = await run("/allowed/..%2Fecho");
      assert.ok(refused[0]?.type === "error");
      assert.equal(refused[0].code, "destination_not_allowed");
      assert.match(refused[0].message, /encoded slash/);
      assert.equal(upstream.received.length, 0);
      assert.equal((await run("/allowed/x")).at(-1)?.type, "call.end");
    } finally {
      await client.close();
      await upstream.close();
    }
  });

  it("refuses a call outside the grant's destinations with destination_not_allowed, and allows one inside", async () => {
    const upstream = await startUpstream(await tempDir("piper-calls-terms-"));
    upstream.routes.set("/v1/charges", (_r, res) => res.end("ok"));
    const client = createUpstream({ extraCaPem: upstream.caPem });
    const terms: GrantTerms = {
      binding: "program",
      lifetime: { kind: "until_revoked" },
      mode: {
        kind: "use",
        destinations: [{ host: `127.0.0.1:${upstream.port}`, method: "GET", path: "/v1/charges*" }],
      },
      policy: null,
    };
    // Stands in for the authority until it returns grant terms (the lead's part of issue 14).
    const grants: CallGrants = {
      get: () => Promise.resolve({ value: TOKEN, grantId: "gr_test", terms, fromCache: false }),
    };
    const uses: unknown[] = [];
    const handler = createCallHandler({
      now: Date.now,
      log: pino({ level: "silent" }),
      grants,
      upstream: client,
      recordUse: (u) => uses.push(u),
    });
    const channel = {
      agent: { clientId: "agent_terms" },
      process: null,
      identification: Promise.resolve(),
      connectionId: "conn_test",
    };
    const run = async (method: string, path: string): Promise<LinkMessage[]> => {
      const frames: LinkMessage[] = [];
      await handler(
        channel,
        { type: "call", id: 1, method, url: `${upstream.origin}${path}`, auth: { bearer: "API_TOKEN" }, wait: true },
        (m) => frames.push(m),
        new AbortController().signal,
      );
      return frames;
    };
    try {
      const refused = await run("POST", "/v1/charges");
      assert.ok(refused[0]?.type === "error");
      assert.equal(refused[0].code, "destination_not_allowed");
      const wrongPath = await run("GET", "/v1/refunds");
      assert.ok(wrongPath[0]?.type === "error");
      assert.equal(wrongPath[0].code, "destination_not_allowed");
      assert.equal(upstream.received.length, 0, "nothing was sent for refused calls");
      const allowed = await run("GET", "/v1/charges");
      assert.equal(allowed.at(-1)?.type, "call.end");
      assert.equal(upstream.received.length, 1);
      assert.equal(uses.length, 3, "every call, refused or not, is audited");
      assert.doesNotMatch(JSON.stringify(uses), new RegExp(TOKEN.replace(/[+/]/g, "\\$&")));
    } finally {
      await client.close();
      await upstream.close();
    }
  });
});
