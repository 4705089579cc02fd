// Sign-in against what the RFCs allow (issue 16 items 1-2): the Link's loopback callback refuses a
// forged answer and keeps waiting for the real one; the device flow accepts every RFC 8628 answer
// from a small standards-only authorization server started here (node:http); and our own
// authority's device polling, with a fake clock over real SQLite, never tells a client that polls
// at the interval to slow down.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { newDataKey, parseDataKeys } from "../src/server/crypto.js";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { createAuthorityClient } from "../src/main/core/authority/authority-client.js";
import { startBrowserLogin, startDeviceLogin } from "../src/main/core/account/sign-in-flows.js";
import { openDatabase, type OpenedDatabase } from "../src/server/db.js";
import { createOAuthService } from "../src/server/oauth.js";
import { ServiceError } from "../src/server/service/index.js";
import { LinkError } from "../src/shared/errors.js";
import { sqliteDatabase, type TestDatabase } from "./db-helpers.js";

/** A token-endpoint error exactly as RFC 6749 section 5.2 allows it: `error` only. */
function oauthError(res: http.ServerResponse, error: string): void {
  res
    .writeHead(400, { "Content-Type": "application/json", "Cache-Control": "no-store" })
    .end(JSON.stringify({ error }));
}

const TOKENS = { access_token: "at_1", token_type: "Bearer", expires_in: 3600, refresh_token: "rt_1" };

interface Standards {
  url: string;
  /** Answers of the token endpoint for the device grant, in order; afterwards, tokens. */
  deviceAnswers: string[];
  /** The `interval` the device authorization answers with; absent when undefined. */
  interval: unknown;
  devicePolls: number;
  /** PKCE: the challenge of the last authorization, checked on the code exchange. */
  challenge: string | null;
  close(): Promise<void>;
}

/** A minimal authorization server that sends only what RFC 6749 / 7636 / 8628 require. */
async function startStandardsServer(): Promise<Standards> {
  const s: Standards = {
    url: "",
    deviceAnswers: [],
    interval: undefined,
    devicePolls: 0,
    challenge: null,
    close: () => Promise.resolve(),
  };
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      const form = new URLSearchParams(body);
      if (req.url === "/oauth/device_authorization") {
        // No `interval` and no `verification_uri_complete`: both optional (RFC 8628 section 3.2).
        res.writeHead(200, { "Content-Type": "application/json" }).end(
          JSON.stringify({
            device_code: "dc_1",
            user_code: "ABCD-EFGH",
            verification_uri: `${s.url}/device`,
            expires_in: 600,
            interval: s.interval,
          }),
        );
        return;
      }
      if (req.url === "/oauth/token" && form.get("grant_type") === "urn:ietf:params:oauth:grant-type:device_code") {
        s.devicePolls += 1;
        const next = s.deviceAnswers.shift();
        if (next !== undefined) return oauthError(res, next);
        res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(TOKENS));
        return;
      }
      if (req.url === "/oauth/token" && form.get("grant_type") === "authorization_code") {
        const verifier = form.get("code_verifier") ?? "";
        const ok =
          form.get("code") === "GOOD" && createHash("sha256").update(verifier).digest("base64url") === s.challenge;
        if (!ok) return oauthError(res, "invalid_grant");
        res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(TOKENS));
        return;
      }
      res.writeHead(404).end();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  s.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  s.close = () => new Promise((resolve) => server.close(() => resolve()));
  return s;
}

/** A fake clock for the device flow: sleeping advances it at once and records how long. */
function fakeClock(): { now: () => number; sleep: (ms: number) => Promise<void>; slept: number[] } {
  let t = 1_000_000;
  const slept: number[] = [];
  return {
    now: () => t,
    sleep: (ms) => {
      slept.push(ms);
      t += ms;
      return Promise.resolve();
    },
    slept,
  };
}

describe("sign-in against a standards-only authorization server", () => {
  let as: Standards;
  before(async () => {
    as = await startStandardsServer();
  });
  after(async () => {
    await as.close();
  });
  const client = () =>
    createAuthorityClient({
      url: as.url,
      credentials: { bearer: () => Promise.resolve(null), rejected: () => undefined },
    });

  it("a forged loopback callback gets 400 and the sign-in keeps waiting for the real one", async () => {
    const attempt = await startBrowserLogin(client(), 60_000);
    const authorize = new URL(attempt.authorizeUrl ?? "");
    as.challenge = authorize.searchParams.get("code_challenge");
    const redirect = authorize.searchParams.get("redirect_uri") ?? "";
    let settled = false;
    void attempt.tokens.then(
      () => (settled = true),
      () => (settled = true),
    );
    for (const forged of [
      `${redirect}?code=ATTACKER&state=WRONG`,
      `${redirect}?code=ATTACKER`,
      `${redirect}?error=access_denied&state=WRONG`,
    ]) {
      const r = await fetch(forged);
      assert.equal(r.status, 400, forged);
      assert.match(await r.text(), /state mismatch/);
    }
    assert.equal(settled, false, "the forged callbacks did not end the sign-in");
    const real = await fetch(
      `${redirect}?code=GOOD&state=${encodeURIComponent(authorize.searchParams.get("state") ?? "")}`,
    );
    assert.equal(real.status, 200);
    assert.deepEqual(await attempt.tokens, TOKENS);
    await assert.rejects(fetch(`${redirect}?code=GOOD&state=x`), "one genuine callback, then the listener is closed");
  });

  it("device flow: default interval 5 s, slow_down without a description adds 5 s, then tokens", async () => {
    as.deviceAnswers = [
      "authorization_pending",
      "slow_down",
      "authorization_pending",
      "slow_down",
      "authorization_pending",
    ];
    as.devicePolls = 0;
    const clock = fakeClock();
    const attempt = await startDeviceLogin(client(), clock);
    assert.equal(attempt.verificationUri, `${as.url}/device`);
    assert.equal(attempt.verificationUriComplete, null);
    assert.equal(attempt.userCode, "ABCD-EFGH");
    assert.deepEqual(await attempt.tokens, TOKENS);
    assert.equal(as.devicePolls, 6);
    assert.deepEqual(clock.slept, [5000, 5000, 10_000, 10_000, 15_000, 15_000]);
  });

  it('device flow: an interval of 0, "x", -3, null or 0.2 polls every 5 s and signs in', async () => {
    try {
      for (const interval of [0, "x", -3, null, 0.2]) {
        as.interval = interval;
        as.deviceAnswers = ["authorization_pending"];
        const clock = fakeClock();
        const attempt = await startDeviceLogin(client(), clock);
        assert.deepEqual(await attempt.tokens, TOKENS, String(interval));
        assert.deepEqual(clock.slept, [5000, 5000], String(interval));
      }
    } finally {
      as.interval = undefined;
    }
  });

  it("device flow: access_denied ends with denied, expired_token with timeout (error only, no description)", async () => {
    as.deviceAnswers = ["access_denied"];
    await assert.rejects(
      (await startDeviceLogin(client(), fakeClock())).tokens,
      (err) => err instanceof LinkError && err.code === "denied",
    );
    as.deviceAnswers = ["expired_token"];
    await assert.rejects(
      (await startDeviceLogin(client(), fakeClock())).tokens,
      (err) => err instanceof LinkError && err.code === "timeout",
    );
  });
});

describe("the authority's device polling (fake clock, real SQLite)", () => {
  let td: TestDatabase;
  let opened: OpenedDatabase;
  before(async () => {
    td = await sqliteDatabase();
    opened = await openDatabase(td.location);
  });
  after(async () => {
    await opened.close();
    await td.drop();
  });

  async function pollError(poll: () => Promise<unknown>): Promise<string> {
    try {
      await poll();
    } catch (err) {
      return err instanceof ServiceError ? err.code : String(err);
    }
    return "tokens";
  }

  it("a client polling every `interval` seconds (with timer jitter) keeps getting authorization_pending", async () => {
    let t = 5_000_000;
    const oauth = createOAuthService({
      db: opened.db,
      keys: parseDataKeys(`k1:${newDataKey()}`),
      now: () => t,
      deviceIntervalS: 5,
    });
    const d = await oauth.deviceAuthorization("piper-link");
    const answers: string[] = [];
    for (const gap of [0, 5000, 4990, 5003, 4950, 5000, 4999, 5000, 4980, 5000, 5000, 5000]) {
      t += gap;
      answers.push(await pollError(() => oauth.pollDevice(d.device_code, "piper-link")));
    }
    assert.deepEqual(new Set(answers), new Set(["authorization_pending"]), answers.join(","));
  });

  it("an early poll gets slow_down and raises the interval, without moving the clock", async () => {
    let t = 9_000_000;
    const oauth = createOAuthService({
      db: opened.db,
      keys: parseDataKeys(`k1:${newDataKey()}`),
      now: () => t,
      deviceIntervalS: 5,
    });
    const d = await oauth.deviceAuthorization("piper-link");
    const poll = () => pollError(() => oauth.pollDevice(d.device_code, "piper-link"));
    assert.equal(await poll(), "authorization_pending");
    t += 1000;
    assert.equal(await poll(), "slow_down", "1 s after the last on-time poll is early");
    // 10 s (the raised interval) after the last on-time poll, not after the early one.
    t += 9000;
    assert.equal(await poll(), "authorization_pending");
  });
});
