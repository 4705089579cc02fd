// The authority contract end to end, on real sockets: the Link's typed client against a real
// authority (SQLite, HTTP on port 0); the event stream read from a real local SSE server (malformed and
// multi-line events); event streams that end when their token is revoked or expires and when the
// authority shuts down; the Link's reachability following the truth; agent routes that need the Link's
// credential; pyper endpoints off by default; and 200 waits in flight that do not slow anything else.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { request } from "undici";
import {
  createAuthorityClient,
  type AuthorityClient,
  type Credentials,
} from "../src/main/core/authority/authority-client.js";
import { createEventDecoder } from "../src/main/core/authority/event-stream.js";
import { startAuthority, type RunningAuthority } from "../src/server/authority.js";
import { newDataKey, parseDataKeys } from "../src/server/crypto.js";
import { PYPER_PATHS } from "../src/server/http.js";
import { pkceChallenge } from "../src/server/oauth.js";
import type { AuthorityEvent } from "../src/shared/authority.js";
import {
  AuthorityReadyLineSchema,
  CreatedUserLineSchema,
  authorityArgv,
  parseAuthorityLine,
} from "../src/shared/authority-process.js";
import { AuthorityRoutes, fillPath } from "../src/shared/authority-routes.js";
import { backoffDelay } from "../src/shared/backoff.js";
import { LinkError } from "../src/shared/errors.js";
import { Browser, csrfOf } from "./browser-helpers.js";
import { BIN } from "./cli-helpers.js";
import { PG_SKIP, PG_URL, postgresDatabase, sqliteDatabase, type TestDatabase } from "./db-helpers.js";
import { waitFor } from "./helpers.js";
import { linkSigner, newApprovalKey } from "./presence-helpers.js";

/** The approval key the authorities below take, as an embedded authority gets one from its Link. */
const approvalKey = newApprovalKey();

const tokenCredentials = (token: string): Credentials => ({
  bearer: () => Promise.resolve(token),
  rejected: () => undefined,
});

/** A promise with its resolver, for waiting on callbacks without sleeping. */
function signal<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve: (v: T) => void = () => undefined;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

async function authorityOn(
  db: TestDatabase,
  extra: Partial<Parameters<typeof startAuthority>[0]> = {},
): Promise<RunningAuthority> {
  return startAuthority({
    db: db.location,
    dataKeys: parseDataKeys(`k1:${newDataKey()}`),
    host: "127.0.0.1",
    port: 0,
    tls: null,
    agentRate: { perSecond: 1000, burst: 2000 },
    approvalKey,
    ...extra,
  });
}

/** Signs up through the authority's pages and redeems a PKCE code: a real OAuth access token. */
async function oauthTokens(url: string): Promise<{ access_token: string; refresh_token: string }> {
  const redirect = "http://127.0.0.1:45679/callback";
  const verifier = randomBytes(32).toString("base64url");
  const b = new Browser(url);
  const authorize = `/oauth/authorize?${new URLSearchParams({ response_type: "code", client_id: "piper-link", redirect_uri: redirect, state: "s", code_challenge: pkceChallenge(verifier), code_challenge_method: "S256" }).toString()}`;
  const start = await b.get(authorize);
  const next = new URL(start.location ?? "", url).searchParams.get("next") ?? "";
  const page = await b.get(`/signup?next=${encodeURIComponent(next)}`);
  await b.post("/signup", {
    csrf: csrfOf(page.text),
    next,
    name: "Pat",
    email: `${randomBytes(4).toString("hex")}@example.com`,
    password: "correct horse battery",
  });
  const code = new URL((await b.get(next)).location ?? "").searchParams.get("code") ?? "";
  const client = createAuthorityClient({ url, credentials: tokenCredentials("unused") });
  try {
    return await client.oauthToken({
      grant_type: "authorization_code",
      client_id: "piper-link",
      code,
      redirect_uri: redirect,
      code_verifier: verifier,
    });
  } finally {
    client.close();
  }
}

/** Opens `/v1/events` with `token`; resolves once it is open, with a promise for its end. */
async function openStream(url: string, token: string): Promise<{ ended: Promise<string> }> {
  const res = await request(new URL("/v1/events", url), { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.statusCode, 200);
  return { ended: res.body.text() };
}

describe("shared helpers", () => {
  it("backoff: full jitter below an exponential ceiling, capped", () => {
    assert.equal(backoffDelay(0, { random: () => 0.999999 }), 249);
    assert.equal(backoffDelay(3, { random: () => 0.5 }), 1000);
    assert.equal(backoffDelay(50, { random: () => 0.999999 }), 9999);
    assert.equal(backoffDelay(-1, { random: () => 0.5 }), 125);
    assert.equal(backoffDelay(2, { random: () => 0 }), 0);
  });

  it("route paths, ready line and argv are read without casts and refuse what is not theirs", () => {
    assert.equal(fillPath(AuthorityRoutes.agentWait.path, { id: "req/1 x" }), "/v1/agent/requests/req%2F1%20x/wait");
    assert.throws(() => fillPath(AuthorityRoutes.agentWait.path, {}), TypeError);
    assert.deepEqual(
      parseAuthorityLine(
        AuthorityReadyLineSchema,
        '{"url":"https://127.0.0.1:1","fingerprint256":"AA","engine":"sqlite"}',
        "ready",
      ),
      { url: "https://127.0.0.1:1", fingerprint256: "AA", engine: "sqlite" },
    );
    assert.throws(() => parseAuthorityLine(AuthorityReadyLineSchema, "Debugger listening", "ready"), /not JSON/);
    assert.throws(() => parseAuthorityLine(AuthorityReadyLineSchema, '{"url":1}', "ready"), /unexpected shape/);
    assert.deepEqual(authorityArgv(["electron", "x", "--piper-authority", "serve", "--db", "d"]), [
      "serve",
      "--db",
      "d",
    ]);
    assert.deepEqual(authorityArgv(["node", "main.js", "serve"]), ["serve"]);
  });
});

describe("event stream from a real SSE server", () => {
  it(
    "skips malformed events (bad JSON, unknown type), joins multi-line data, survives chunking, and reconnects when the stream ends",
    { timeout: 15_000 },
    async () => {
      const good: AuthorityEvent = { type: "grant.changed", userId: "u1", id: "gr_1", status: null };
      let connections = 0;
      const server = http.createServer((req, res) => {
        assert.equal(req.headers.authorization, "Bearer tok");
        connections += 1;
        res.writeHead(200, { "Content-Type": "text/event-stream" });
        if (connections > 1) {
          res.write(": connected\n\n"); // flushes the headers; this one stays open
          return;
        }
        // Split mid-event across writes, CRLF line ends on one, a comment, then the stream ends.
        res.write(": connected\n\ndata: {not json\n\n");
        res.write('data: {"type":"user.deleted","userId":"u1","id":null,"status":null}\n\n');
        res.write('data: {"type":"request.created",\r\ndata: "userId":"u1",\n');
        res.write('data: "id":"req_1","status":"pending"}\n\n');
        res.end(`data: ${JSON.stringify(good)}\n\n`);
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const skipped: string[] = [];
      const events: AuthorityEvent[] = [];
      const states: Array<[boolean, string | null]> = [];
      const reconnected = signal();
      const client = createAuthorityClient({
        url,
        credentials: tokenCredentials("tok"),
        log: (_msg, fields) => skipped.push(String(fields["reason"])),
      });
      const stop = client.follow(
        (e) => events.push(e),
        (connected, error) => {
          states.push([connected, error]);
          if (states.filter(([c]) => c).length === 2) reconnected.resolve();
        },
      );
      try {
        await reconnected.promise;
        assert.deepEqual(skipped, ["not JSON", "unknown event"]);
        assert.deepEqual(events, [{ type: "request.created", userId: "u1", id: "req_1", status: "pending" }, good]);
        assert.deepEqual(states.slice(0, 3), [
          [true, null],
          [false, "the event stream ended"],
          [true, null],
        ]);
      } finally {
        stop();
        client.close();
        server.closeAllConnections();
        server.close();
      }
    },
  );

  it("the decoder never throws, whatever it is fed", () => {
    const seen: string[] = [];
    const d = createEventDecoder({ event: (e) => seen.push(e.type), malformed: (why) => seen.push(why) });
    for (const junk of [
      "\u0000\u0000",
      "data:",
      "\n\n",
      "retry: x\n\n",
      "data: null\n\n",
      "data: []\n\n",
      "event: x\ndata: 1\n\n",
    ])
      d.feed(junk);
    // `null`, `[]` and `1` are JSON but no event; the rest is no event at all.
    assert.deepEqual(seen, ["unknown event", "unknown event", "unknown event"]);
    d.feed("data: {\n\n");
    assert.deepEqual(seen.at(-1), "not JSON");
  });
});

describe("authority routes and streams", () => {
  let db: TestDatabase;
  let authority: RunningAuthority;
  let now = Date.now();
  before(async () => {
    db = await sqliteDatabase();
    authority = await authorityOn(db, { now: () => now, streamRecheckMs: 50 });
  });
  after(async () => {
    await authority.close();
    await db.drop();
  });

  it(
    "agent routes need the Link's credential and serve only its own instances; pyper endpoints are off (404)",
    { timeout: 30_000 },
    async () => {
      const alice = await authority.service.createUser("Alice");
      const bob = await authority.service.createUser("Bob");
      const instanceId = await authority.service.registerInstance(alice.userId, "alice's machine");
      const body = JSON.stringify({ instanceId, agentClientId: "claude-code", variable: "OPENAI_API_KEY" });
      const post = (path: string, token?: string) =>
        request(new URL(path, authority.url), {
          method: "POST",
          headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body,
        }).then(async (r) => ({ status: r.statusCode, json: (await r.body.json()) as Record<string, unknown> }));
      const noToken = await post("/v1/agent/resolve");
      assert.deepEqual([noToken.status, noToken.json["error"]], [401, "invalid_token"]);
      const wait = await post("/v1/agent/requests/req_x/wait");
      assert.equal(wait.status, 401);
      const otherAccount = await post("/v1/agent/resolve", bob.linkToken);
      assert.deepEqual([otherAccount.status, otherAccount.json["error"]], [401, "invalid_instance"]);
      const owner = await post("/v1/agent/resolve", alice.linkToken);
      assert.equal(owner.status, 202);
      for (const path of Object.values(PYPER_PATHS)) {
        const r = await post(path);
        assert.deepEqual([path, r.status, r.json["error"]], [path, 404, "not_found"]);
      }
    },
  );

  it("an event stream ends when its access token is revoked at /oauth/revoke", { timeout: 30_000 }, async () => {
    const tokens = await oauthTokens(authority.url);
    const stream = await openStream(authority.url, tokens.access_token);
    const revoke = await request(new URL("/oauth/revoke", authority.url), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: tokens.access_token }).toString(),
    });
    assert.equal(revoke.statusCode, 200);
    await revoke.body.dump();
    assert.match(await stream.ended, /: connected/);
  });

  it("an event stream ends when its access token expires", { timeout: 30_000 }, async () => {
    const tokens = await oauthTokens(authority.url);
    const stream = await openStream(authority.url, tokens.access_token);
    now += 16 * 60_000; // access tokens live 15 minutes
    assert.match(await stream.ended, /: connected/);
  });
});

describe("shutdown and reachability", () => {
  it(
    "close() ends open event streams so the authority stops; the Link's client reports unreachable, and calls fail retryably",
    { timeout: 30_000 },
    async () => {
      const db = await sqliteDatabase();
      const authority = await authorityOn(db);
      const { linkToken } = await authority.service.createUser("Pat");
      const client = createAuthorityClient({ url: authority.url, credentials: tokenCredentials(linkToken) });
      const up = signal();
      const down = signal<string | null>();
      const stop = client.follow(
        () => undefined,
        (connected, error) => (connected ? up.resolve() : down.resolve(error)),
      );
      try {
        await up.promise;
        const raw = await openStream(authority.url, linkToken);
        await authority.close(); // hung forever before: Fastify waited for the open streams
        assert.match(await raw.ended, /: connected/);
        assert.equal(typeof (await down.promise), "string");
        await assert.rejects(
          client.listGrants(),
          (err: unknown) => err instanceof LinkError && err.code === "authority_unavailable" && err.retryable,
        );
      } finally {
        stop();
        client.close();
        await db.drop();
      }
    },
  );
});

describe("PostgreSQL connections lost (the server restarted, an administrator ended them)", { skip: PG_SKIP }, () => {
  it(
    "the authority keeps serving: open event streams end (so Links drop their grant caches), the bus listens anew and events flow again",
    { timeout: 60_000 },
    async () => {
      const db = await postgresDatabase();
      const logged: string[] = [];
      const authority = await authorityOn(db, { log: (msg) => logged.push(msg) });
      const { userId, linkToken } = await authority.service.createUser("Pat");
      const client = createAuthorityClient({ url: authority.url, credentials: tokenCredentials(linkToken) });
      const events: AuthorityEvent[] = [];
      let connected = false;
      const stop = client.follow(
        (e) => events.push(e),
        (c) => (connected = c),
      );
      const admin = new pg.Client({ connectionString: PG_URL ?? "" });
      try {
        await waitFor(() => connected, "the Link's stream");
        await authority.service.setSecret(userId, "BEFORE", "v1");
        await waitFor(() => events.some((e) => e.type === "secret.changed"), "an event before the loss");
        const raw = await openStream(authority.url, linkToken);
        // Every connection of this database: the pool's idle ones, the LISTEN and the NOTIFY one.
        await admin.connect();
        const name = new URL(db.location).pathname.slice(1);
        const ended = await admin.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
          [name],
        );
        assert.ok((ended.rowCount ?? 0) >= 3, `ended ${String(ended.rowCount)} connections`);
        assert.match(await raw.ended, /: connected/, "the open stream ended: events may have been missed");
        assert.ok(
          logged.some((m) => /connection lost while idle|event bus error/.test(m)),
          logged.join("; "),
        );
        // The process still serves, from fresh connections; after the bus listens again, events flow.
        // A request that meets a pooled connection the server ended before the pool noticed fails
        // once, retryably (500 → authority_unavailable); the next ones get fresh connections.
        let grants: unknown = null;
        await waitFor(
          async () => {
            grants = await client.listGrants().catch((err: unknown) => {
              if (err instanceof LinkError && err.retryable) return null;
              throw err;
            });
            return grants !== null;
          },
          "a request served from a fresh connection",
          10_000,
        );
        assert.deepEqual(grants, []);
        events.length = 0;
        await waitFor(() => connected, "the Link's stream again", 20_000);
        await waitFor(
          async () => {
            await new Promise((r) => setTimeout(r, 200));
            await authority.service.setSecret(userId, "AFTER", `v${String(Date.now())}`);
            return events.some((e) => e.type === "secret.changed");
          },
          "an event after the bus listened again",
          20_000,
        );
      } finally {
        stop();
        client.close();
        await admin.end().catch(() => undefined);
        await authority.close();
        await db.drop();
      }
    },
  );
});

describe("SIGTERM with a Link's event stream open (issue 16 item 15)", () => {
  it("the authority process ends its streams and exits", { timeout: 30_000 }, async () => {
    const db = await sqliteDatabase();
    const env = { ...process.env, PIPER_AUTHORITY_DATA_KEYS: `k1:${newDataKey()}` };
    const user = spawnSync(process.execPath, [BIN, "authority", "create-user", "--db", db.location], {
      env,
      encoding: "utf8",
    });
    assert.equal(user.status, 0, user.stderr);
    const { linkToken } = parseAuthorityLine(CreatedUserLineSchema, user.stdout.trim(), "create-user");
    const child = spawn(
      process.execPath,
      [BIN, "authority", "serve", "--db", db.location, "--listen", "127.0.0.1:0", "--insecure-http-behind-proxy"],
      { env, stdio: ["ignore", "pipe", "inherit"] },
    );
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      const [line] = (await once(child.stdout, "data")) as [Buffer];
      const ready = parseAuthorityLine(AuthorityReadyLineSchema, line.toString().split("\n")[0] ?? "", "ready");
      const stream = await openStream(ready.url, linkToken);
      child.kill("SIGTERM");
      assert.match(await stream.ended, /: connected/);
      assert.equal(await exited, 0);
    } finally {
      child.kill("SIGKILL");
      await db.drop();
    }
  });
});

describe("waits do not starve everything else (issue 16 item 5)", () => {
  let db: TestDatabase;
  let authority: RunningAuthority;
  let client: AuthorityClient | null = null;
  const clientRef = (c: AuthorityClient): void => {
    client = c;
  };
  before(async () => {
    db = await sqliteDatabase();
    authority = await authorityOn(db);
  });
  after(async () => {
    client?.close();
    await authority.close();
    await db.drop();
  });

  it(
    "with 200 waits in flight, a granted resolve and listGrants answer while the waits are still pending; the 21st wait of one agent is rate_limited",
    { timeout: 30_000 },
    async () => {
      const { userId, linkToken } = await authority.service.createUser("Pat");
      const instanceId = await authority.service.registerInstance(userId, "m");
      await authority.service.setSecret(userId, "GRANTED", "granted-value");
      const client = createAuthorityClient({ url: authority.url, credentials: tokenCredentials(linkToken) });
      clientRef(client);
      const first = await client.resolve({ instanceId, agentClientId: "fast", variable: "GRANTED" });
      assert.equal(first.status, "pending");
      await client.approve(first.requestId, { scope: { kind: "until_revoked" } }, linkSigner(approvalKey));

      const abort = new AbortController();
      let settled = 0;
      const waits: Array<Promise<unknown>> = [];
      for (let a = 0; a < 10; a++) {
        const agentClientId = `slow_${a}`;
        const r = await client.resolve({ instanceId, agentClientId, variable: "NEVER_APPROVED" });
        assert.equal(r.status, "pending");
        for (let i = 0; i < 20; i++) {
          waits.push(
            client.wait(r.requestId, { instanceId, agentClientId, timeoutMs: 120_000 }, abort.signal).finally(() => {
              settled += 1;
            }),
          );
        }
        if (a === 0) {
          await assert.rejects(
            client.wait(r.requestId, { instanceId, agentClientId, timeoutMs: 120_000 }, abort.signal),
            (err: unknown) =>
              err instanceof LinkError &&
              err.code === "rate_limited" &&
              err.retryable &&
              /Too many pending waits/.test(err.message),
          );
        }
      }
      assert.equal(waits.length, 200);

      const granted = await client.resolve({ instanceId, agentClientId: "fast", variable: "GRANTED" });
      assert.equal(granted.status === "granted" ? granted.value : granted.status, "granted-value");
      const grants = await client.listGrants();
      assert.equal(grants.length, 1);
      assert.equal(settled, 0, "every wait is still pending");

      abort.abort();
      const outcomes = await Promise.allSettled(waits);
      assert.ok(outcomes.every((o) => o.status === "rejected"));
    },
  );
});
