// Accounts and OAuth on a real authority over HTTP (the protocol is the same on HTTPS): sign-up and
// sign-in pages with CSRF, authorization code + PKCE to a loopback redirect, refresh rotation with
// reuse detection, revocation, the device flow, and brute-force throttling.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { newDataKey, parseDataKeys } from "../src/server/crypto.js";
import { startAuthority, type RunningAuthority } from "../src/server/authority.js";
import { pkceChallenge } from "../src/server/oauth.js";
import { Browser, csrfOf } from "./browser-helpers.js";
import { sqliteDatabase, type TestDatabase } from "./db-helpers.js";

const REDIRECT = "http://127.0.0.1:45678/callback";

function authorizeUrl(challenge: string, state = "st-123", redirect = REDIRECT, method = "S256"): string {
  return `/oauth/authorize?${new URLSearchParams({ response_type: "code", client_id: "piper-link", redirect_uri: redirect, state, code_challenge: challenge, code_challenge_method: method }).toString()}`;
}

describe("accounts and OAuth", () => {
  let db: TestDatabase;
  let authority: RunningAuthority;
  before(async () => {
    db = await sqliteDatabase();
    authority = await startAuthority({
      db: db.location,
      dataKeys: parseDataKeys(`k1:${newDataKey()}`),
      host: "127.0.0.1",
      port: 0,
      tls: null,
      deviceIntervalS: 1,
    });
  });
  after(async () => {
    await authority.close();
    await db.drop();
  });

  async function signedUpBrowser(email: string): Promise<Browser> {
    const b = new Browser(authority.url);
    const page = await b.get("/signup");
    const r = await b.post("/signup", {
      csrf: csrfOf(page.text),
      next: "/device",
      name: "Pat",
      email,
      password: "correct horse battery",
    });
    assert.equal(r.status, 303);
    return b;
  }

  async function codeFor(b: Browser, verifier: string, state = "st-123"): Promise<string> {
    const r = await b.get(authorizeUrl(pkceChallenge(verifier), state));
    assert.equal(r.status, 303);
    const back = new URL(r.location ?? "");
    assert.equal(`${back.origin}${back.pathname}`, REDIRECT);
    assert.equal(back.searchParams.get("state"), state);
    return back.searchParams.get("code") ?? "";
  }

  const verifier = (): string => randomBytes(32).toString("base64url");
  const token = (b: Browser, form: Record<string, string>) =>
    b.post("/oauth/token", { client_id: "piper-link", ...form });

  it("first run: authorize sends the person to 'create your local account', then back to the Link with a code that PKCE redeems", async () => {
    const b = new Browser(authority.url);
    const v = verifier();
    const start = await b.get(authorizeUrl(pkceChallenge(v)));
    assert.equal(start.status, 303);
    assert.match(start.location ?? "", /\/signup\?next=/);
    const page = await b.get(start.location ?? "");
    assert.match(page.text, /Create your local account/);
    assert.match(page.text, /<label for="email">Email<\/label>/);
    const noCsrf = await b.post("/signup", {
      next: "/device",
      email: "first@example.com",
      password: "correct horse battery",
    });
    assert.equal(noCsrf.status, 403);
    const next = new URL(start.location ?? "", authority.url).searchParams.get("next") ?? "";
    const created = await b.post("/signup", {
      csrf: csrfOf(page.text),
      next,
      name: "First",
      email: "first@example.com",
      password: "correct horse battery",
    });
    assert.equal(created.status, 303);
    assert.equal(created.location, new URL(next, authority.url).toString());
    const code = new URL((await b.get(next)).location ?? "").searchParams.get("code") ?? "";
    assert.match(code, /^pac_/);
    const tokens = await token(b, { grant_type: "authorization_code", code, redirect_uri: REDIRECT, code_verifier: v });
    assert.equal(tokens.status, 200, tokens.text);
    assert.equal(tokens.json["token_type"], "Bearer");
    const me = await fetch(new URL("/v1/me", authority.url), {
      headers: { Authorization: `Bearer ${String(tokens.json["access_token"])}` },
    });
    assert.equal(me.status, 200);
  });

  it("refuses a wrong verifier, a replayed code (revoking what it issued), a wrong redirect and a non-loopback redirect", async () => {
    const b = await signedUpBrowser("replay@example.com");
    const v = verifier();
    const bad = await token(b, {
      grant_type: "authorization_code",
      code: await codeFor(b, v),
      redirect_uri: REDIRECT,
      code_verifier: verifier(),
    });
    assert.deepEqual([bad.status, bad.json["error"]], [400, "invalid_grant"]);

    const code = await codeFor(b, v);
    const first = await token(b, { grant_type: "authorization_code", code, redirect_uri: REDIRECT, code_verifier: v });
    assert.equal(first.status, 200);
    const replay = await token(b, { grant_type: "authorization_code", code, redirect_uri: REDIRECT, code_verifier: v });
    assert.deepEqual([replay.status, replay.json["error"]], [400, "invalid_grant"]);
    const me = await fetch(new URL("/v1/me", authority.url), {
      headers: { Authorization: `Bearer ${String(first.json["access_token"])}` },
    });
    assert.equal(me.status, 401, "tokens from a replayed code are revoked");

    const wrongRedirect = await token(b, {
      grant_type: "authorization_code",
      code: await codeFor(b, v),
      redirect_uri: "http://127.0.0.1:1/other",
      code_verifier: v,
    });
    assert.deepEqual([wrongRedirect.status, wrongRedirect.json["error"]], [400, "invalid_grant"]);
    const evil = await b.get(authorizeUrl(pkceChallenge(v), "s", "https://evil.example/callback"));
    assert.equal(evil.status, 400, "no redirect to a non-loopback URI");
    const plain = await b.get(authorizeUrl(pkceChallenge(v), "s", REDIRECT, "plain"));
    assert.equal(new URL(plain.location ?? "").searchParams.get("error"), "invalid_request");
    const wrongClient = await b.post("/oauth/token", {
      client_id: "someone-else",
      grant_type: "refresh_token",
      refresh_token: "x",
    });
    assert.deepEqual([wrongClient.status, wrongClient.json["error"]], [401, "invalid_client"]);
  });

  it("rotates refresh tokens; reusing an old one revokes the whole session; revocation ends access", async () => {
    const b = await signedUpBrowser("rotate@example.com");
    const v = verifier();
    const t1 = await token(b, {
      grant_type: "authorization_code",
      code: await codeFor(b, v),
      redirect_uri: REDIRECT,
      code_verifier: v,
    });
    const t2 = await token(b, { grant_type: "refresh_token", refresh_token: String(t1.json["refresh_token"]) });
    assert.equal(t2.status, 200);
    assert.notEqual(t2.json["refresh_token"], t1.json["refresh_token"]);
    const reuse = await token(b, { grant_type: "refresh_token", refresh_token: String(t1.json["refresh_token"]) });
    assert.deepEqual([reuse.status, reuse.json["error"]], [400, "invalid_grant"]);
    const afterReuse = await token(b, { grant_type: "refresh_token", refresh_token: String(t2.json["refresh_token"]) });
    assert.deepEqual(
      [afterReuse.status, afterReuse.json["error"]],
      [400, "invalid_grant"],
      "the current refresh token dies with the family",
    );

    const t3 = await token(b, {
      grant_type: "authorization_code",
      code: await codeFor(b, v),
      redirect_uri: REDIRECT,
      code_verifier: v,
    });
    assert.equal((await b.post("/oauth/revoke", { token: String(t3.json["refresh_token"]) })).status, 200);
    const me = await fetch(new URL("/v1/me", authority.url), {
      headers: { Authorization: `Bearer ${String(t3.json["access_token"])}` },
    });
    assert.equal(me.status, 401);
  });

  it("device flow: pending, slow_down, the person enters the code, then tokens once", async () => {
    const link = new Browser(authority.url);
    const d = await link.post("/oauth/device_authorization", { client_id: "piper-link" });
    assert.equal(d.status, 200);
    const deviceCode = String(d.json["device_code"]);
    assert.match(String(d.json["user_code"]), /^[A-Z]{4}-[A-Z]{4}$/);
    assert.match(String(d.json["verification_uri"]), /\/device$/);
    const poll = () =>
      token(link, { grant_type: "urn:ietf:params:oauth:grant-type:device_code", device_code: deviceCode });
    assert.equal((await poll()).json["error"], "authorization_pending");
    assert.equal((await poll()).json["error"], "slow_down");

    const person = await signedUpBrowser("device@example.com");
    const page = await person.get(`/device?user_code=${String(d.json["user_code"]).toLowerCase()}`);
    assert.match(page.text, /Connect Piper Link/);
    const wrong = await person.post("/device", { csrf: csrfOf(page.text), user_code: "ZZZZ-ZZZZ" });
    assert.equal(wrong.status, 400);
    const ok = await person.post("/device", {
      csrf: csrfOf(page.text),
      user_code: String(d.json["user_code"]).toLowerCase(),
    });
    assert.match(ok.text, /You can close this tab/);
    const tokens = await poll();
    assert.equal(tokens.status, 200, tokens.text);
    assert.match(String(tokens.json["access_token"]), /^pat_/);
    assert.equal((await poll()).json["error"], "invalid_grant", "a device code gives tokens once");
  });

  it("throttles repeated wrong passwords and escapes what it echoes", async () => {
    await signedUpBrowser("victim@example.com");
    const b = new Browser(authority.url);
    const page = await b.get("/login");
    const csrf = csrfOf(page.text);
    for (let i = 0; i < 5; i++) {
      const r = await b.post("/login", { csrf, next: "/device", email: "victim@example.com", password: `wrong-${i}` });
      assert.equal(r.status, 401);
      assert.match(r.text, /role="alert">Wrong email or password\./);
    }
    const locked = await b.post("/login", {
      csrf,
      next: "/device",
      email: "victim@example.com",
      password: "correct horse battery",
    });
    assert.equal(locked.status, 429);
    assert.match(locked.text, /Too many failed sign-ins/);
    const echoed = await b.post("/login", {
      csrf,
      next: "/device",
      email: "<script>x</script>@e.com",
      password: "nope-nope-nope",
    });
    assert.ok(!echoed.text.includes("<script>x</script>"));
  });
});
