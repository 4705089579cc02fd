// Hostile and odd input from issue 16 (items 6, 7, 9, 11) and the SDK's abort (issue 12 item 6),
// each against the real thing: a real Link on port 0 (test/helpers.ts), real WebSockets, the real
// SDK, and the compiled CLI for what a person reads in a terminal.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import WebSocket from "ws";
import { z } from "zod";
import { RequestViewSchema } from "../src/shared/authority.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import { displayText } from "../src/shared/display.js";
import { CloseCode, LinkMessageSchema, type LinkMessage } from "../src/shared/protocol.js";
import { AGENT_SUBPROTOCOL } from "../src/shared/version.js";
import { recoverId } from "../src/main/core/loopback/frame-guard.js";
import { createPiperClient, envNameFor, PiperError } from "@piper-link/sdk";
import { envFallbackValue, pythonStrip } from "../packages/sdk/src/env.js";
import { cli, cliJson, cliJsonAsync, newEnv, stopAll } from "./cli-helpers.js";
import { connectAgent, startTestLink, waitFor } from "./helpers.js";

after(stopAll);

const HOSTILE_NAME = "Build Bot\u001b[2K\r\u001b[32mSystem Updater\u001b[0m";

describe("agent-chosen text is escaped and cut (issue 16 item 6)", () => {
  it("displayText escapes C0/C1 controls and bidi overrides and cuts with an ellipsis", () => {
    const table: Array<[string, number, string]> = [
      [HOSTILE_NAME, 120, "Build Bot\\u{1b}[2K\\u{d}\\u{1b}[32mSystem Updater\\u{1b}[0m"],
      ["plain name", 120, "plain name"],
      ["tab\there", 120, "tab\\u{9}here"],
      ["bell\u0007 del\u007f c1\u009b", 120, "bell\\u{7} del\\u{7f} c1\\u{9b}"],
      ["evil\u202egnp.exe", 120, "evil\\u{202e}gnp.exe"],
      ["iso\u2066x\u2069 lrm\u200e", 120, "iso\\u{2066}x\\u{2069} lrm\\u{200e}"],
      ["line\u2028sep", 120, "line\\u{2028}sep"],
      ["abcdefghij", 5, "abcd…"],
      ["abcde", 5, "abcde"],
      // An escape is never cut in half: it is left out whole.
      ["ab\u001bcdef", 6, "ab…"],
      // Astral characters count as one code point and are not split.
      ["😀😀😀😀", 3, "😀…"],
      ["Ünïcödé ok", 120, "Ünïcödé ok"],
    ];
    for (const [input, max, expected] of table) assert.equal(displayText(input, max), expected, JSON.stringify(input));
    assert.ok(displayText("x".repeat(1000)).length <= 120);
  });

  it("`piper-link requests` prints the issue's hostile hello name escaped, and the request id intact", async () => {
    const e = await newEnv();
    const status = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
    const agent = await connectAgent(status.url);
    try {
      agent.send({ type: "hello", id: 1, protocol: 1, agent: { clientId: "build_bot", name: HOSTILE_NAME } });
      assert.equal((await agent.next((m) => "id" in m && m.id === 1)).type, "welcome");
      agent.send({
        type: "resolve",
        id: 2,
        variable: "DEPLOY_TOKEN",
        reason: "ship it\u001b]0;pwned\u0007",
        wait: true,
        timeoutMs: 60_000,
      });
      const pending = await agent.next((m) => m.type === "pending");
      assert.equal(pending.type, "pending");
      // The list is read asynchronously: this process holds the agent's live socket meanwhile.
      const list = await cliJsonAsync(e, ["requests"], z.array(RequestViewSchema));
      assert.equal(list[0]?.agentName, HOSTILE_NAME, "--json keeps the data as the agent sent it");

      const out = cli(e, ["requests"]);
      assert.equal(out.code, 0, out.stderr);
      const raw: number[] = [];
      for (let i = 0; i < out.stdout.length; i++) {
        const c = out.stdout.charCodeAt(i);
        if ((c < 0x20 && c !== 0x0a) || (c >= 0x7f && c <= 0x9f)) raw.push(c);
      }
      assert.deepEqual(raw, [], "no raw control character reaches the terminal");
      const line = out.stdout.split("\n").find((l) => l.includes(pending.requestId));
      assert.ok(line !== undefined, `the request id ${pending.requestId} is printed: ${out.stdout}`);
      assert.ok(line.startsWith(pending.requestId), "the id starts the line; nothing can move the cursor back over it");
      assert.ok(line.includes("Build Bot\\u{1b}[2K\\u{d}\\u{1b}[32mSystem Updater\\u{1b}[0m (build_bot)"), line);
      assert.ok(line.includes("ship it\\u{1b}]0;pwned\\u{7}"), line);
    } finally {
      agent.close();
    }
  });
});

describe("environment-variable names follow pyper-sdk 0.7.1 (issue 16 item 9)", () => {
  it("strip, upper-case, non [A-Z0-9_] -> _, runs of _ collapse, prefix in front; the map wins", () => {
    const table: Array<[string, string, Record<string, string>, string]> = [
      ["  OpenAI-API-Key ", "", {}, "OPENAI_API_KEY"],
      ["OPENAI_API_KEY", "", {}, "OPENAI_API_KEY"],
      ["a--b  c", "", {}, "A_B_C"],
      ["Gmail key", "", {}, "GMAIL_KEY"],
      ["db.password", "MYAPP_", {}, "MYAPP_DB_PASSWORD"],
      ["__x__", "", {}, "_X_"],
      ["-lead", "", {}, "_LEAD"],
      ["naïve key", "", {}, "NA_VE_KEY"],
      ["straße", "", {}, "STRASSE"],
      ["emoji😀key", "", {}, "EMOJI_KEY"],
      // Python's strip() also removes U+001C-U+001F and U+0085; JavaScript's trim() would not.
      ["\u001cFOO\u0085", "", {}, "FOO"],
      // ...and keeps U+FEFF, which trim() would remove.
      ["\ufeffFOO", "", {}, "_FOO"],
      ["  x ", "P_", { x: "EXPLICIT" }, "EXPLICIT"],
      ["x", "P_", { "  x": "NOT_USED" }, "P_X"],
      ["toString", "", {}, "TOSTRING"],
    ];
    for (const [variable, prefix, map, expected] of table)
      assert.equal(envNameFor(variable, prefix, map), expected, JSON.stringify(variable));
    assert.equal(pythonStrip(" \t\u3000 a b \u00a0"), "a b");
  });

  it("an empty value counts as set, an unset variable as absent (pyper-sdk: `is not None`)", async () => {
    assert.equal(envFallbackValue({ A: "" }, "A"), "");
    assert.equal(envFallbackValue({ A: "v" }, "A"), "v");
    assert.equal(envFallbackValue({}, "A"), null);
    assert.equal(envFallbackValue({}, "constructor"), null);
    const client = createPiperClient({ clientId: "env_only", useLink: false, env: { OPENAI_API_KEY: "" } });
    assert.deepEqual(await client.getSecret("  OpenAI-API-Key "), {
      value: "",
      source: "environment_variable",
      variable: "  OpenAI-API-Key ",
    });
    client.close();
  });
});

describe("rejected frames keep their id (issue 16 item 7)", () => {
  it("recoverId reads the id of frames it cannot parse", () => {
    assert.equal(recoverId('{"type":"resolve","id":"r-7","variable":'), "r-7");
    assert.equal(recoverId('{"type":"resolve","id": 42, oops}'), 42);
    assert.equal(recoverId('{"id":"a\\"b","type":1'), 'a"b');
    assert.equal(recoverId("not json at all"), null);
    assert.equal(recoverId('{"id":1.5,"type":"x"'), null);
    assert.equal(recoverId('{"type":"hello","id":{"nested":1}}'), null);
  });

  it("answers malformed, oversized and rate-limited frames under their id", async () => {
    const t = await startTestLink({
      instanceId: "inst_ids_0001",
      limits: { messageBurst: 4, messagesPerSecond: 1, maxProtocolErrors: 100 },
    });
    try {
      const agent = await connectAgent(t.url);
      agent.send('{"type":"resolve","id":"broken-1","variable":');
      assert.deepEqual(await agent.next((m) => m.type === "error"), {
        type: "error",
        id: "broken-1",
        code: "malformed_frame",
        message: "The frame is not valid JSON.",
        retryable: false,
      });
      agent.send(JSON.stringify({ type: "resolve", id: "big-1", variable: "X", reason: "x".repeat(70 * 1024) }));
      const big = await agent.next((m) => m.type === "error");
      assert.equal(big.type === "error" ? big.id : undefined, "big-1");
      for (let i = 0; i < 10; i++) agent.send({ type: "resolve", id: `flood-${i}`, variable: "X" });
      const limited = await agent.next((m) => m.type === "error" && m.code === "rate_limited");
      assert.equal(
        limited.type === "error" && typeof limited.id === "string" && limited.id.startsWith("flood-"),
        true,
        JSON.stringify(limited),
      );
      assert.ok(
        agent.received.every((m) => m.type !== "error" || m.id !== null),
        JSON.stringify(agent.received),
      );
      agent.close();
    } finally {
      await t.stop();
    }
  });

  it("150 concurrent getSecret on one connection all settle promptly; the rate-limited ones with rate_limited", async () => {
    // No authority: every call the Link reads is answered at once (authority_unavailable), so any
    // call that does not settle within seconds is one whose answer lost its id.
    const t = await startTestLink({ instanceId: "inst_burst_0001" });
    const client = createPiperClient({
      clientId: "burst",
      linkUrl: t.url,
      fallbackToEnv: false,
      approvalTimeoutMs: 30_000,
    });
    try {
      await client.getInstanceId();
      const started = Date.now();
      const outcomes = await Promise.all(
        Array.from({ length: 150 }, (_, i) =>
          client.getSecret(`VAR_${i}`).then(
            () => "value",
            (err: unknown) => (err instanceof PiperError ? `${err.code}:${String(err.retryable)}` : String(err)),
          ),
        ),
      );
      const elapsed = Date.now() - started;
      const counts = new Map<string, number>();
      for (const o of outcomes) counts.set(o, (counts.get(o) ?? 0) + 1);
      assert.ok(elapsed < 5000, `all 150 settled in ${elapsed} ms`);
      assert.ok(
        (counts.get("rate_limited:true") ?? 0) > 0,
        `some calls were rate-limited: ${JSON.stringify([...counts])}`,
      );
      assert.equal(
        (counts.get("rate_limited:true") ?? 0) + (counts.get("authority_unavailable:true") ?? 0),
        150,
        JSON.stringify([...counts]),
      );
    } finally {
      client.close();
      await t.stop();
    }
  });
});

describe("the SDK's client-level signal (issue 12 item 6)", () => {
  it("aborting it rejects pending calls with `aborted` and getSecret does not fall back to the environment", async () => {
    const e = await newEnv();
    const status = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
    const controller = new AbortController();
    const client = createPiperClient({
      clientId: "abort_me",
      linkUrl: status.url,
      signal: controller.signal,
      env: { OPENAI_API_KEY: "from-env" },
    });
    let pendingSeen!: () => void;
    const seen = new Promise<void>((resolve) => (pendingSeen = resolve));
    const waiting = client.getSecret("OPENAI_API_KEY", { onPending: () => pendingSeen() });
    await seen;
    controller.abort();
    await assert.rejects(waiting, (err: unknown) => err instanceof PiperError && err.code === "aborted");
    // After the abort, new calls fail the same way, still without the environment's value.
    await assert.rejects(
      client.getSecret("OPENAI_API_KEY"),
      (err: unknown) => err instanceof PiperError && err.code === "aborted",
    );
  });

  it("an abort while connecting also ends in `aborted`, not in the environment's value", async () => {
    const controller = new AbortController();
    // A port nothing listens on: the connect attempt is in flight when the signal fires.
    const client = createPiperClient({
      clientId: "abort_early",
      linkUrl: "ws://127.0.0.1:9/v1/link",
      signal: controller.signal,
      env: { X: "from-env" },
      connectTimeoutMs: 5000,
    });
    const call = client.getSecret("X");
    controller.abort();
    await assert.rejects(call, (err: unknown) => err instanceof PiperError && err.code === "aborted");
  });
});

describe("the per-process connection cap applies before welcome (issue 16 item 11)", () => {
  it("a burst over the cap from one process: over-cap connections never receive welcome", async () => {
    const cap = 5;
    const burst = 24;
    const t = await startTestLink({ instanceId: "inst_cap_0001", limits: { maxConnectionsPerProcess: cap } });
    try {
      const conns = Array.from({ length: burst }, (_, i) => {
        const ws = new WebSocket(t.url, AGENT_SUBPROTOCOL);
        const state = { frames: [] as LinkMessage[], closeCode: null as number | null, ws };
        ws.on("open", () =>
          ws.send(JSON.stringify({ type: "hello", id: i, protocol: 1, agent: { clientId: "burst_agent" } })),
        );
        ws.on("message", (data: Buffer) =>
          state.frames.push(LinkMessageSchema.parse(JSON.parse(data.toString("utf8")))),
        );
        ws.on("close", (code) => (state.closeCode = code));
        return state;
      });
      const welcomed = (c: (typeof conns)[number]): boolean => c.frames.some((m) => m.type === "welcome");
      await waitFor(
        () =>
          conns.filter((c) => c.closeCode !== null).length === burst - cap &&
          conns.filter((c) => welcomed(c)).length >= cap,
        `${burst - cap} refusals and ${cap} welcomes`,
      );
      const refused = conns.filter((c) => c.closeCode !== null);
      assert.ok(
        refused.every((c) => c.closeCode === CloseCode.tooManyConnections),
        JSON.stringify(refused.map((c) => c.closeCode)),
      );
      assert.deepEqual(refused.filter(welcomed).length, 0, "no refused connection got welcome first");
      assert.equal(conns.filter(welcomed).length, cap);
      for (const c of conns) c.ws.close();
    } finally {
      await t.stop();
    }
  });
});
