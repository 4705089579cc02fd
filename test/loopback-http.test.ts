/**
 * The one HTTP stack of the loopback listeners (issue 23 item 14, loopback/loopback-http.ts): the
 * loopback server, pyper-sdk's HTTPS endpoints and the sign-in's redirect listener pass the same
 * owner-check hook before a route, a router error or a body parser runs, answer unknown routes
 * without reading their bodies, and write every error (framework errors included) in their own shape
 * with the security headers. Real listeners on loopback and real HTTP, HTTPS and WebSocket clients;
 * the socket owner is injected as another uid where the test needs "another user" without root (the
 * real second user is tested in peer-identity, pyper-link and local-users).
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { Agent, request } from "undici";
import WebSocket from "ws";
import { startBrowserLogin } from "../src/main/core/account/sign-in-flows.js";
import { createAuthorityClient } from "../src/main/core/authority/authority-client.js";
import { createLoopbackApp, linkErrorWriter, type LoopbackApp } from "../src/main/core/loopback/loopback-http.js";
import { SECURITY_HEADERS } from "../src/main/core/loopback/loopback-guard.js";
import { createPyperHandlers } from "../src/main/core/pyper/pyper-handlers.js";
import { startPyperServer, type PyperListener } from "../src/main/core/pyper/pyper-server.js";
import type { SocketOwner } from "../src/main/core/process/socket-table-linux.js";
import { generateLoopbackCertificate } from "../src/platform/loopback-certificate.js";
import { PYPER_PATHS } from "../src/shared/pyper.js";

const silent = pino({ enabled: false });
const ownUid = process.getuid?.() ?? 0;
/** Every socket belongs to another uid. */
const foreignOwner = (): Promise<SocketOwner> => Promise.resolve({ uid: ownUid + 1 });
/** Every socket is this user's (no /proc reading: the answer under test is the stack's). */
const ownOwner = (): Promise<SocketOwner> => Promise.resolve({ uid: ownUid });

/** Sends `raw` (a whole HTTP request) on a new socket and returns everything the server wrote. */
async function rawExchange(port: number, raw: string): Promise<string> {
  const socket = net.connect({ host: "127.0.0.1", port });
  await once(socket, "connect");
  let reply = "";
  socket.setEncoding("utf8").on("data", (c: string) => (reply += c));
  socket.write(raw);
  await Promise.race([once(socket, "close"), new Promise((r) => setTimeout(r, 3000))]);
  socket.destroy();
  return reply;
}

function assertSecurityHeaders(headers: Record<string, string | string[] | undefined>, what: string): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS))
    assert.equal(headers[name.toLowerCase()], value, `${what}: ${name}`);
}

/** A listener with one JSON route, one page route and one WebSocket route, counting what ran. */
async function testStack(
  owner: () => Promise<SocketOwner>,
): Promise<{ stack: LoopbackApp; port: number; ran: string[] }> {
  const ran: string[] = [];
  const stack = createLoopbackApp({
    name: "test listener",
    log: silent,
    timeouts: { headersMs: 5000, requestMs: 10_000, keepAliveMs: 1000 },
    bodyLimit: 1024,
    socketOwner: owner,
    writeError: linkErrorWriter,
    websocket: { maxPayload: 1024, protocol: (_pathname, offered) => (offered.has("test.v1") ? "test.v1" : false) },
  });
  stack.app.addContentTypeParser("application/json", { parseAs: "string" }, (_request, body, done) => {
    ran.push("parser");
    done(null, JSON.parse(String(body)));
  });
  void stack.app.register((scope, _options, done) => {
    scope.post("/things", (_request, reply) => {
      ran.push("POST /things");
      return reply.send({ ok: true });
    });
    scope.get("/page/:name", (_request, reply) => {
      ran.push("GET /page");
      return reply.send({ ok: true });
    });
    stack.websocketRoute(scope, "/socket", {}, (ws, ends) => {
      ran.push(ends === null ? "socket without ends" : "socket");
      // What the channel keeps: the socket, no longer tied to the upgrade's HTTP response.
      ran.push(ws.listenerCount("error") === 1 ? "one error listener" : "other error listeners");
      ws.close(1000);
    });
    done();
  });
  const { port } = await stack.listen(0, false);
  return { stack, port, ran };
}

describe("one HTTP stack for the loopback listeners (issue 23 item 14)", () => {
  describe("the owner check comes first, in every listener", () => {
    let t: Awaited<ReturnType<typeof testStack>>;
    before(async () => {
      t = await testStack(foreignOwner);
    });
    after(async () => {
      await t.stack.close();
    });

    it("refuses a route, an unknown route, a path the router cannot decode, a body and an upgrade with 403 foreign_user; nothing runs", async () => {
      const requests = [
        "GET /page/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        // A malformed escape: Fastify's router answers these outside its hooks; the stack checks the owner there too.
        "GET /page/%zz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        `POST /things HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`,
        "GET /socket HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: test.v1\r\n\r\n",
      ];
      for (const raw of requests) {
        const reply = await rawExchange(t.port, raw.replace("Host: 127.0.0.1", `Host: 127.0.0.1:${t.port}`));
        assert.match(reply, /^HTTP\/1\.1 403 /, raw);
        assert.match(reply, /"error":"foreign_user"/, raw);
        assert.match(reply, /x-content-type-options: nosniff/i, raw);
        assert.match(reply, /connection: close/i, `${raw}: nothing more is served on another user's connection`);
      }
      assert.deepEqual(t.ran, [], "no route, parser or socket handler ran for another user");
    });

    it("pyper-sdk's HTTPS endpoints refuse another user in pyper-sdk's error shape, before the body is read", async () => {
      const { private: key, cert } = await generateLoopbackCertificate("127.0.0.1", new Date(Date.now() + 86_400_000));
      const calls: string[] = [];
      const handlers = createPyperHandlers({
        now: Date.now,
        log: silent,
        authority: () => null,
        instanceId: () => "inst_stack_0001",
      });
      const listener: PyperListener = await startPyperServer({
        port: 0,
        tls: { key, cert },
        log: silent,
        peers: {
          lookup: () => {
            calls.push("lookup");
            return Promise.resolve(null);
          },
        },
        handlers,
        socketOwner: foreignOwner,
      });
      const dispatcher = new Agent({ connect: { ca: cert } });
      try {
        const r = await request(`https://127.0.0.1:${listener.port}${PYPER_PATHS.resolveMapping}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ instance_id: "inst_stack_0001", variable_name: "X" }),
          dispatcher,
        });
        assert.equal(r.statusCode, 403);
        const body = (await r.body.json()) as { error: string; error_description: string };
        assert.equal(body.error, "foreign_user");
        assert.match(body.error_description, /another user/);
        assertSecurityHeaders(r.headers, "pyper refusal");
        assert.deepEqual(calls, [], "the caller's process was not even looked up");
      } finally {
        await dispatcher.close();
        await listener.stop();
      }
    });

    it("the sign-in's redirect listener refuses another user even with the right state, and the sign-in keeps waiting", async () => {
      const client = createAuthorityClient({
        url: "https://127.0.0.1:9",
        credentials: { bearer: () => Promise.resolve(null), rejected: () => undefined },
      });
      const attempt = await startBrowserLogin(client, 60_000, null, { log: silent, socketOwner: foreignOwner });
      const authorize = new URL(attempt.authorizeUrl ?? "");
      const redirect = authorize.searchParams.get("redirect_uri") ?? "";
      let settled = false;
      attempt.tokens.then(
        () => (settled = true),
        () => (settled = true),
      );
      const r = await fetch(`${redirect}?code=C&state=${authorize.searchParams.get("state") ?? ""}`);
      assert.equal(r.status, 403);
      assert.equal(((await r.json()) as { error: string }).error, "foreign_user");
      assert.equal(r.headers.get("connection"), "close");
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(settled, false, "the sign-in is still waiting for the real callback");
      attempt.cancel();
      await assert.rejects(attempt.tokens, /cancelled/);
    });
  });

  describe("routes, framework errors and upgrades in the listener's shape", () => {
    let t: Awaited<ReturnType<typeof testStack>>;
    before(async () => {
      t = await testStack(ownOwner);
    });
    after(async () => {
      await t.stack.close();
    });

    it("serves this user; a foreign Host or a web page's Origin is refused by the guard", async () => {
      const ok = await request(`http://127.0.0.1:${t.port}/page/a`);
      assert.equal(ok.statusCode, 200);
      assertSecurityHeaders(ok.headers, "a served page");
      await ok.body.dump();
      const rebinding = await rawExchange(
        t.port,
        "GET /page/a HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n",
      );
      assert.match(rebinding, /^HTTP\/1\.1 403 [\s\S]*"error":"forbidden_host"/);
      const page = await request(`http://127.0.0.1:${t.port}/page/a`, { headers: { origin: "https://evil.example" } });
      assert.equal(page.statusCode, 403);
      assert.equal(((await page.body.json()) as { error: string }).error, "forbidden_origin");
    });

    it("an unknown route or method is answered without reading its body (404 / 405 with Allow, connection closed)", async () => {
      const before = t.ran.length;
      const unknown = await rawExchange(
        t.port,
        `POST /nothing HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`,
      );
      assert.match(unknown, /^HTTP\/1\.1 404 [\s\S]*connection: close[\s\S]*"error":"not_found"/i);
      const wrongMethod = await rawExchange(
        t.port,
        `PUT /things HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`,
      );
      assert.match(wrongMethod, /^HTTP\/1\.1 405 [\s\S]*allow: POST[\s\S]*"error":"method_not_allowed"/i);
      assert.equal(t.ran.length, before, "no parser or route ran");
    });

    it("framework errors come in the listener's shape: body too large 413, wrong media type 415, bad JSON 400, undecodable path 400", async () => {
      const cases: Array<[string, number, string]> = [
        [
          `POST /things HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{"a":"${"x".repeat(3992)}"}`,
          413,
          "bad_request",
        ],
        [
          `POST /things HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\nConnection: close\r\nContent-Type: text/csv\r\nContent-Length: 3\r\n\r\na,b`,
          415,
          "bad_request",
        ],
        [`GET /page/%zz HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\nConnection: close\r\n\r\n`, 400, "bad_request"],
        // An absolute-form target names a host the Host check would not see (RFC 9112 section 3.2.2); `*` names nothing here.
        [
          `GET http://evil.example/page/a HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\nConnection: close\r\n\r\n`,
          400,
          "bad_request",
        ],
        [`OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\nConnection: close\r\n\r\n`, 400, "bad_request"],
        // A static route answers only its own spelling, not a percent-encoded one.
        [
          `POST /thing%73 HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`,
          404,
          "not_found",
        ],
        // Malformed HTTP is answered by Node's parser, through the stack's clientErrorHandler.
        [`FOO / HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\n\r\n`, 400, "bad_request"],
      ];
      for (const [raw, status, code] of cases) {
        const reply = await rawExchange(t.port, raw);
        assert.match(reply, new RegExp(`^HTTP/1\\.1 ${status} `), raw.slice(0, 60));
        assert.match(reply, new RegExp(`"error":"${code}"`), raw.slice(0, 60));
        assert.match(reply, /x-frame-options: DENY/i, raw.slice(0, 60));
      }
    });

    it("upgrades go through the same routes: a WebSocket route opens, a page route refuses the upgrade with 404, a plain GET on the socket route is 404", async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${t.port}/socket`, "test.v1");
      const [code] = (await once(ws, "close")) as [number];
      assert.equal(code, 1000);
      assert.ok(t.ran.includes("socket"), t.ran.join(", "));
      assert.ok(t.ran.includes("one error listener"), t.ran.join(", "));
      const onPage = new WebSocket(`ws://127.0.0.1:${t.port}/page/a`, "test.v1");
      const [, res] = (await once(onPage, "unexpected-response")) as [unknown, { statusCode: number }];
      assert.equal(res.statusCode, 404);
      onPage.on("error", () => undefined);
      onPage.terminate();
      const plain = await request(`http://127.0.0.1:${t.port}/socket`);
      assert.equal(plain.statusCode, 404);
      assert.match(await plain.body.text(), /WebSocket endpoint/);
    });
  });

  describe("pyper-sdk's endpoints in pyper-sdk's error shape", () => {
    let listener: PyperListener;
    let dispatcher: Agent;
    let url: (path: string) => string;
    before(async () => {
      const { private: key, cert } = await generateLoopbackCertificate("127.0.0.1", new Date(Date.now() + 86_400_000));
      const handlers = createPyperHandlers({
        now: Date.now,
        log: silent,
        authority: () => null,
        instanceId: () => "inst_stack_0002",
      });
      listener = await startPyperServer({
        port: 0,
        tls: { key, cert },
        log: silent,
        peers: { lookup: () => Promise.resolve(null) },
        handlers,
        socketOwner: ownOwner,
      });
      dispatcher = new Agent({ connect: { ca: cert } });
      url = (path) => `https://127.0.0.1:${listener.port}${path}`;
    });
    after(async () => {
      await dispatcher.close();
      await listener.stop();
    });

    it("wrong media type, too large, prototype keys, wrong method and unknown path: stable codes with error_description", async () => {
      const path = PYPER_PATHS.resolveMapping;
      const cases: Array<[string, Parameters<typeof request>[1], number, string]> = [
        [
          "text body",
          { method: "POST", headers: { "content-type": "text/plain" }, body: "hi" },
          400,
          "invalid_request",
        ],
        [
          "70 KiB",
          {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ x: "y".repeat(70 * 1024) }),
          },
          413,
          "payload_too_large",
        ],
        [
          "__proto__",
          { method: "POST", headers: { "content-type": "application/json" }, body: '{"__proto__":{"polluted":true}}' },
          400,
          "invalid_request",
        ],
        [
          "not JSON",
          { method: "POST", headers: { "content-type": "application/json" }, body: "{" },
          400,
          "invalid_request",
        ],
        ["GET", { method: "GET" }, 405, "method_not_allowed"],
        ["no body", { method: "POST" }, 400, "invalid_request"],
      ];
      for (const [what, options, status, code] of cases) {
        const r = await request(url(path), { ...options, dispatcher });
        assert.equal(r.statusCode, status, what);
        const body = (await r.body.json()) as { error: string; error_description: string };
        assert.equal(body.error, code, what);
        assert.ok(body.error_description.length > 0, what);
        assertSecurityHeaders(r.headers, what);
        if (status === 405) assert.equal(r.headers["allow"], "POST");
      }
      const unknown = await request(url("/nothing"), { method: "POST", dispatcher });
      assert.equal(unknown.statusCode, 404);
      assert.equal(((await unknown.body.json()) as { error: string }).error, "not_found");
      assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
    });
  });
});
