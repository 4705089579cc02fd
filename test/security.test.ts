// The loopback security rules of DESIGN.md section 3, against a real Link with real clients.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import WebSocket from "ws";
import { CloseCode, type ErrorFrame } from "../src/shared/protocol.js";
import { AGENT_SUBPROTOCOL, CONTROL_SUBPROTOCOL } from "../src/shared/version.js";
import { connectAgent, startTestLink, upgradeStatus, type TestLink } from "./helpers.js";

/** A raw HTTP GET with arbitrary headers (fetch forbids setting Host and Origin). */
function rawGet(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, headers, method: "GET" }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("loopback security", () => {
  let t: TestLink;
  before(async () => {
    t = await startTestLink({ instanceId: "inst_security_0001" });
  });
  after(async () => {
    await t.stop();
  });

  it("refuses a WebSocket upgrade that carries a web page's Origin (cross-site WebSocket hijacking)", async () => {
    const r = await upgradeStatus(t.url, { origin: "https://evil.example" });
    assert.equal(r.status, 403);
    assert.equal((JSON.parse(r.body) as { error: string }).error, "forbidden_origin");
    assert.equal(r.headers["access-control-allow-origin"], undefined);
    // Even the Link's own UI origin has no business on the agent channel.
    const own = await upgradeStatus(t.url, { origin: `http://127.0.0.1:${t.port}` });
    assert.equal(own.status, 403);
  });

  it("refuses a Host header that is not this Link (DNS rebinding), on HTTP and on upgrades", async () => {
    const r = await upgradeStatus(t.url, { headers: { Host: `evil.example:${t.port}` } });
    assert.equal(r.status, 403);
    assert.equal((JSON.parse(r.body) as { error: string }).error, "forbidden_host");
    const get = await rawGet(t.port, "/piper-link-context", { Host: `evil.example:${t.port}` });
    assert.equal(get.status, 403);
    assert.ok(!get.body.includes("inst_security"));
    const wrongPort = await rawGet(t.port, "/healthz", { Host: "127.0.0.1:1" });
    assert.equal(wrongPort.status, 403);
  });

  it("does not answer a web page's GET with the instance ID", async () => {
    const r = await rawGet(t.port, "/piper-link-context", {
      Host: `127.0.0.1:${t.port}`,
      Origin: "https://evil.example",
    });
    assert.equal(r.status, 403);
    assert.ok(!r.body.includes("inst_security"));
  });

  it("sends no CORS headers and always CORP same-origin + nosniff", async () => {
    const cases: Array<[string, Record<string, string>]> = [
      ["/piper-link-context", {}],
      ["/healthz", {}],
      ["/nope", {}],
      ["/piper-link-context", { Origin: "https://evil.example" }],
      ["/healthz", { Origin: `http://127.0.0.1:${t.port}` }],
    ];
    for (const [path, extra] of cases) {
      const r = await rawGet(t.port, path, { Host: `127.0.0.1:${t.port}`, ...extra });
      for (const name of Object.keys(r.headers)) assert.ok(!name.startsWith("access-control-"), `${path} sent ${name}`);
      assert.equal(r.headers["cross-origin-resource-policy"], "same-origin", path);
      assert.equal(r.headers["x-content-type-options"], "nosniff", path);
    }
  });

  it("allows GET only, with 405 and a stable code otherwise", async () => {
    const r = await fetch(`http://127.0.0.1:${t.port}/piper-link-context`, { method: "POST", body: "{}" });
    assert.equal(r.status, 405);
    assert.equal(((await r.json()) as { error: string }).error, "method_not_allowed");
  });

  it("closes a 1 MiB frame with 1009 and keeps serving other agents", async () => {
    const big = await connectAgent(t.url);
    const bystander = await connectAgent(t.url);
    big.send("x".repeat(1024 * 1024));
    assert.equal(await big.closed, CloseCode.messageTooBig);
    const welcome = await bystander.hello(1);
    assert.equal(welcome.type, "welcome");
    bystander.close();
  });

  it("refuses a 20 MB frame at its header: closes with 1009 before the payload arrives", async () => {
    const { port, pathname } = new URL(t.url);
    const socket = net.connect(Number(port), "127.0.0.1");
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    const received: Buffer[] = [];
    socket.on("data", (c: Buffer) => received.push(c));
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.write(
      [
        `GET ${pathname} HTTP/1.1`,
        `Host: 127.0.0.1:${port}`,
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}`,
        "Sec-WebSocket-Version: 13",
        `Sec-WebSocket-Protocol: ${AGENT_SUBPROTOCOL}`,
        "",
        "",
      ].join("\r\n"),
    );
    const upgraded = (): boolean => Buffer.concat(received).includes("\r\n\r\n");
    for (let i = 0; i < 100 && !upgraded(); i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(Buffer.concat(received).toString("latin1"), /^HTTP\/1\.1 101/);
    received.length = 0;
    // A masked text frame that says it carries 20 MB (64-bit length), then only its first 64 KiB.
    const header = Buffer.alloc(14);
    header[0] = 0x81;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(20 * 1024 * 1024), 2);
    randomBytes(4).copy(header, 10);
    socket.write(Buffer.concat([header, Buffer.alloc(64 * 1024)]));
    await closed;
    const frames = Buffer.concat(received);
    // The close frame: opcode 8, then the status code 1009 (message too big).
    assert.equal(frames[0], 0x88, `a close frame, got ${frames.subarray(0, 8).toString("hex")}`);
    assert.equal(frames.readUInt16BE(2), CloseCode.messageTooBig);
    // The Link still serves.
    const fine = await connectAgent(t.url);
    assert.equal((await fine.hello(3)).type, "welcome");
    fine.close();
  });

  it("answers garbage frames with protocol errors, closes with 4002 after too many, and still serves others", async () => {
    const noisy = await connectAgent(t.url);
    const garbage = [
      "",
      "{",
      "[]",
      "null",
      "42",
      '"str"',
      '{"type":5}',
      '{"no":"type"}',
      "\u0000\u0001",
      '{"type":"hello"}',
    ];
    for (let i = 0; i < 100; i++) {
      if (noisy.ws.readyState !== WebSocket.OPEN) break;
      noisy.send(garbage[i % garbage.length]);
    }
    assert.equal(await noisy.closed, CloseCode.protocolErrors);
    const errors = noisy.received.filter((m): m is ErrorFrame => m.type === "error");
    assert.ok(errors.length >= 20, `expected protocol errors before the close, got ${errors.length}`);
    for (const e of errors) assert.ok(["malformed_frame", "bad_request"].includes(e.code), JSON.stringify(e));
    const fine = await connectAgent(t.url);
    assert.equal((await fine.hello(2)).type, "welcome");
    fine.close();
  });

  it("rejects binary frames and invalid UTF-8 without crashing", async () => {
    const agent = await connectAgent(t.url);
    agent.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    const e = await agent.next();
    assert.equal(e.type === "error" && e.code, "malformed_frame");
    // Invalid UTF-8 in a text frame: the WebSocket layer closes with 1007.
    const socket = (agent.ws as unknown as { _socket: net.Socket })._socket;
    socket.write(Buffer.from([0x81, 0x82, 0, 0, 0, 0, 0xc3, 0x28]));
    assert.equal(await agent.closed, 1007);
    const fine = await connectAgent(t.url);
    assert.equal((await fine.hello(3)).type, "welcome");
    fine.close();
  });

  it("refuses unknown WebSocket paths with 404", async () => {
    const r = await upgradeStatus(`ws://127.0.0.1:${t.port}/v1/other`);
    assert.equal(r.status, 404);
  });
});

describe("loopback limits", () => {
  it("closes a connection that never says hello with 4000", async () => {
    const t = await startTestLink({ limits: { handshakeTimeoutMs: 300 } });
    try {
      const agent = await connectAgent(t.url);
      assert.equal(await agent.closed, CloseCode.handshakeTimeout);
    } finally {
      await t.stop();
    }
  });

  it("closes an idle connection with 4001", async () => {
    const t = await startTestLink({ limits: { idleTimeoutMs: 300, handshakeTimeoutMs: 5000 } });
    try {
      const agent = await connectAgent(t.url);
      await agent.hello(1);
      assert.equal(await agent.closed, CloseCode.idleTimeout);
    } finally {
      await t.stop();
    }
  });

  it("terminates a connection that stops answering pings", async () => {
    const t = await startTestLink({ limits: { heartbeatIntervalMs: 100 } });
    try {
      const agent = await connectAgent(t.url, { autoPong: false });
      await agent.hello(1);
      assert.equal(await agent.closed, 1006);
    } finally {
      await t.stop();
    }
  });

  it("rate-limits a flood with rate_limited errors, then closes it with 4003", async () => {
    const t = await startTestLink({
      instanceId: "inst_rate_0001",
      limits: { messageBurst: 5, messagesPerSecond: 1, maxRateLimitStrikes: 10 },
    });
    try {
      const agent = await connectAgent(t.url);
      for (let i = 0; i < 50 && agent.ws.readyState === WebSocket.OPEN; i++)
        agent.send({ type: "hello", id: i, protocol: 1, agent: { clientId: "flood" } });
      assert.equal(await agent.closed, CloseCode.rateLimited);
      const limited = agent.received.filter((m) => m.type === "error" && m.code === "rate_limited");
      assert.ok(limited.length >= 10, `got ${limited.length} rate_limited errors`);
      assert.ok(limited.every((m) => m.type === "error" && m.retryable));
    } finally {
      await t.stop();
    }
  });

  it("limits connections per process with 4005 and globally with 503", async () => {
    const t = await startTestLink({ limits: { maxConnectionsPerProcess: 2, maxConnections: 5 } });
    try {
      const a = await connectAgent(t.url);
      const b = await connectAgent(t.url);
      const c = await connectAgent(t.url);
      assert.equal(await c.closed, CloseCode.tooManyConnections);
      assert.equal(a.closeCode, null);
      assert.equal(b.closeCode, null);
      a.close();
      b.close();
      await Promise.all([a.closed, b.closed]);
    } finally {
      await t.stop();
    }
    const g = await startTestLink({ limits: { maxConnections: 2, maxConnectionsPerProcess: 10 } });
    try {
      const held = [await connectAgent(g.url), await connectAgent(g.url)];
      const r = await upgradeStatus(g.url);
      assert.equal(r.status, 503);
      assert.equal((JSON.parse(r.body) as { error: string }).error, "too_many_connections");
      for (const h of held) h.close();
    } finally {
      await g.stop();
    }
  });

  it("cuts off a slowloris client that never finishes its headers", async () => {
    const t = await startTestLink();
    try {
      const socket = net.connect(t.port, "127.0.0.1");
      await new Promise((r) => socket.once("connect", r));
      socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\n`);
      const ended = new Promise<string>((resolve) => {
        let data = "";
        socket.on("data", (c: Buffer) => (data += c.toString()));
        socket.on("close", () => resolve(data));
      });
      // headersTimeout is 5 s, checked every second: the socket is answered 408 and closed.
      const reply = await ended;
      assert.match(reply, /^HTTP\/1\.1 408 Request Timeout/);
    } finally {
      await t.stop();
    }
  });
});

describe("control channel", () => {
  let t: TestLink;
  before(async () => {
    t = await startTestLink();
  });
  after(async () => {
    await t.stop();
  });

  function openControl(
    options: WebSocket.ClientOptions = {},
  ): Promise<{ ws: WebSocket; frames: unknown[]; closed: Promise<number> }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${t.port}/v1/control`, CONTROL_SUBPROTOCOL, options);
      const frames: unknown[] = [];
      const closed = new Promise<number>((r) => ws.on("close", (code) => r(code)));
      ws.on("message", (d: Buffer) => frames.push(JSON.parse(d.toString())));
      ws.once("open", () => resolve({ ws, frames, closed }));
      ws.once("error", reject);
    });
  }

  it("refuses a wrong token with unauthorized and close 4004", async () => {
    const c = await openControl();
    c.ws.send(JSON.stringify({ type: "auth", token: "wrong" }));
    assert.equal(await c.closed, CloseCode.unauthorized);
    assert.deepEqual(c.frames, [{ type: "error", id: null, code: "unauthorized", message: "Wrong control token." }]);
  });

  it("refuses calls before auth", async () => {
    const c = await openControl();
    c.ws.send(JSON.stringify({ type: "call", id: 1, method: "logout", params: {} }));
    assert.equal(await c.closed, CloseCode.unauthorized);
  });

  it("refuses a foreign Origin and accepts the Link's own UI origin", async () => {
    const r = await upgradeStatus(
      `ws://127.0.0.1:${t.port}/v1/control`,
      { origin: "https://evil.example" },
      CONTROL_SUBPROTOCOL,
    );
    assert.equal(r.status, 403);
    const own = await openControl({ origin: `http://127.0.0.1:${t.port}` });
    own.ws.close();
  });

  it("runs LinkApi calls after auth, validates params, and pushes status events", async () => {
    const c = await openControl();
    c.ws.send(JSON.stringify({ type: "auth", token: t.link.controlToken }));
    c.ws.send(JSON.stringify({ type: "call", id: 1, method: "setInstanceId", params: { instanceId: "" } }));
    c.ws.send(
      JSON.stringify({ type: "call", id: 2, method: "setInstanceId", params: { instanceId: "inst_control_0001" } }),
    );
    const deadline = Date.now() + 5000;
    while (c.frames.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const byType = (type: string) =>
      c.frames.filter((f) => (f as { type: string }).type === type) as Array<Record<string, unknown>>;
    assert.equal(byType("authenticated").length, 1);
    assert.equal(byType("error")[0]?.["code"], "bad_request");
    const result = byType("result")[0]?.["result"] as { state: string; instanceIdRedacted: string };
    assert.equal(result.state, "ready");
    assert.equal(result.instanceIdRedacted, "inst_••••••0001");
    assert.equal(byType("event").length, 1);
    c.ws.close();
    await t.link.api.logout({});
  });
});
