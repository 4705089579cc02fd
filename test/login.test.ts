// Signing in once (issue 5), end to end on real processes: the compiled CLI runs `piper-link login`
// against a Link with its embedded authority (HTTPS, self-signed, pinned), the person's side is
// driven over HTTP by a cookie-keeping client, and the real keyring holds the result. The person's
// browser only ever meets the Link's own http://127.0.0.1 origin, which serves the authority's
// sign-in pages (issue 15 item 3): the real-browser test runs without ignoring certificate errors.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";
import fs from "node:fs/promises";
import path from "node:path";
import { after, describe, it } from "node:test";
import { z } from "zod";
import { authorityCookies, rewriteLocation, rewriteSetCookies } from "../src/main/core/loopback/sign-in-proxy.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import { Browser, csrfOf } from "./browser-helpers.js";
import { BIN, cli, cliJson, newEnv, stopAll, type CliEnv } from "./cli-helpers.js";
import { readSealed } from "./vault-reader.js";
import { createKeychainStore, type KeychainItem } from "../src/main/core/runtime/keychain.js";
import { CHROMIUM_SKIP, launchChromium } from "./chromium.js";
import { testLinkEnv, waitFor } from "./helpers.js";

after(stopAll);

interface Running {
  stderr: () => string;
  done: Promise<{ code: number | null; stdout: string }>;
}

function runLogin(e: CliEnv, args: string[], env: NodeJS.ProcessEnv = e.env): Running {
  const child = spawn(process.execPath, [BIN, "login", ...args, "--json"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  return {
    stderr: () => err,
    done: new Promise((resolve) => child.on("exit", (code) => resolve({ code, stdout: out }))),
  };
}

/** A keychain item's value, opened with the person's passphrase (the keychain holds it sealed); "" when absent. */
async function keychainItem(e: CliEnv, item: KeychainItem): Promise<string> {
  return (await readSealed(createKeychainStore({ env: testLinkEnv(), profile: e.profile }), item)) ?? "";
}

async function startLink(e: CliEnv): Promise<{ port: number; authorityUrl: string; ca: string }> {
  const s = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
  assert.ok(s.authority);
  const ca = await fs.readFile(path.join(e.paths.dataDir, "authority", "tls", "tls.crt"), "utf8");
  return { port: s.port, authorityUrl: s.authority.url, ca };
}

describe("one-time login in a real browser (Debian Chromium via Playwright)", { skip: CHROMIUM_SKIP }, () => {
  it("completes sign-up and the PKCE redirect back to the Link's loopback listener, and enters a device code", async () => {
    const e = await newEnv();
    const { port } = await startLink(e);
    const browser = await launchChromium();
    try {
      // No ignoreHTTPSErrors: the browser must never meet the embedded authority's self-signed certificate.
      const context = await browser.newContext();
      const page = await context.newPage();

      const login = runLogin(e, ["--no-browser"]);
      await waitFor(() => /oauth\/authorize\?/.test(login.stderr()), "the sign-in address");
      const authorize = /(http:\/\/\S+\/oauth\/authorize\?\S+)/.exec(login.stderr())?.[1] ?? "";
      assert.equal(
        new URL(authorize).origin,
        `http://127.0.0.1:${port}`,
        "the sign-in address is the Link's own origin",
      );
      await page.goto(authorize);
      await page.getByRole("heading", { name: "Create your local account" }).waitFor();
      await page.getByLabel("Your name").fill("Robin");
      await page.getByLabel("Email").fill("robin@example.com");
      await page.getByLabel("Password (at least 10 characters)").fill("correct horse battery");
      assert.equal(new URL(page.url()).origin, `http://127.0.0.1:${port}`);
      await page.getByRole("button", { name: "Create account" }).click();
      await page.getByRole("heading", { name: "You're signed in" }).waitFor();
      assert.match(page.url(), /^http:\/\/127\.0\.0\.1:\d+\/callback\?/);
      const r = await login.done;
      assert.equal(r.code, 0, login.stderr());
      assert.equal(LinkStatusSchema.parse(JSON.parse(r.stdout)).authority?.account, "oauth");
      assert.match(await keychainItem(e, "instance-id"), /^inst_/);
      assert.equal((await fetch(`http://127.0.0.1:${port}/piper-link-context`)).status, 200);

      // Sign in again with the device flow; the browser already has a session, so only the code is asked.
      const device = runLogin(e, ["--device"]);
      await waitFor(() => /enter the code [A-Z]{4}-[A-Z]{4}/.test(device.stderr()), "the device code");
      const code = /enter the code ([A-Z]{4}-[A-Z]{4})/.exec(device.stderr())?.[1] ?? "";
      const verification = /open (http:\/\/\S+\/device) and/.exec(device.stderr())?.[1] ?? "";
      assert.equal(verification, `http://127.0.0.1:${port}/device`);
      await page.goto(verification);
      await page.getByLabel("Code").fill(code);
      await page.getByRole("button", { name: "Connect" }).click();
      await page.getByRole("heading", { name: "Piper Link is connected" }).waitFor();
      assert.equal((await device.done).code, 0, device.stderr());
    } finally {
      await browser.close();
      cli(e, ["stop"]);
    }
  });
});

describe("one-time login", () => {
  it("device flow: first run creates the local account, the code connects the Link, the keychain keeps the sign-in across restarts; logout revokes and clears", async () => {
    const e = await newEnv();
    const { port, authorityUrl, ca } = await startLink(e);
    assert.equal(cliJson(e, ["status"], LinkStatusSchema).authority?.account, "local-token");

    const login = runLogin(e, ["--device"]);
    await waitFor(() => /enter the code [A-Z]{4}-[A-Z]{4}/.test(login.stderr()), "the device code to be printed");
    const userCode = /enter the code ([A-Z]{4}-[A-Z]{4})/.exec(login.stderr())?.[1] ?? "";
    const verification = /open (http:\/\/\S+\/device) and/.exec(login.stderr())?.[1] ?? "";
    assert.equal(
      verification,
      `http://127.0.0.1:${port}/device`,
      "the device page is served on the Link's port (works through `ssh -L`)",
    );
    assert.notEqual(new URL(authorityUrl).port, String(port));

    const person = new Browser(`http://127.0.0.1:${port}`);
    const signup = await person.follow(`/device?user_code=${userCode}`);
    assert.match(signup.text, /Create your local account/, "first run offers to create the local account");
    const next = /name="next" value="([^"]+)"/.exec(signup.text)?.[1]?.replace(/&#38;/g, "&") ?? "";
    const created = await person.post("/signup", {
      csrf: csrfOf(signup.text),
      next,
      name: "Pat",
      email: "pat@example.com",
      password: "correct horse battery",
    });
    assert.equal(created.status, 303);
    const devicePage = await person.follow(created.location ?? "");
    assert.match(devicePage.text, new RegExp(`value="${userCode}"`));
    const connected = await person.post("/device", { csrf: csrfOf(devicePage.text), user_code: userCode });
    assert.match(connected.text, /You can close this tab/);

    const result = await login.done;
    assert.equal(result.code, 0, login.stderr());
    const status = LinkStatusSchema.parse(JSON.parse(result.stdout));
    assert.equal(status.state, "ready");
    assert.equal(status.authority?.account, "oauth");
    const instanceId = await keychainItem(e, "instance-id");
    assert.match(instanceId, /^inst_/);
    assert.match(await keychainItem(e, "refresh-token"), /^prt_/);
    assert.deepEqual(await (await fetch(`http://127.0.0.1:${port}/piper-link-context`)).json(), { instanceId });
    assert.equal(cli(e, ["secrets", "set", "K"], "v").code, 0, "Link API calls use the OAuth access token");

    // Restart: still signed in, same instance, the refresh token (rotated) still works.
    const before = await keychainItem(e, "refresh-token");
    assert.equal(cli(e, ["stop"]).code, 0);
    await startLink(e);
    assert.equal(cliJson(e, ["status"], LinkStatusSchema).state, "ready");
    assert.deepEqual(
      cliJson(e, ["secrets", "list"], z.array(z.object({ name: z.string() }).loose())).map((s) => s.name),
      ["K"],
    );
    assert.notEqual(await keychainItem(e, "refresh-token"), before, "refresh tokens rotate");

    // Logout: revoked at the authority, gone from the keychain, agents told.
    const last = await keychainItem(e, "refresh-token");
    assert.equal(cli(e, ["logout"]).code, 0);
    assert.equal(await keychainItem(e, "refresh-token"), "");
    assert.equal(await keychainItem(e, "instance-id"), "");
    // Signing out locked the Link (its embedded authority stopped): the person unlocks to look again.
    assert.equal(cliJson(e, ["status"], LinkStatusSchema).vault.lockedReason, "signed_out");
    assert.equal(cli(e, ["unlock"]).code, 0);
    const reopened = cliJson(e, ["status"], LinkStatusSchema).authority?.url ?? "";
    const reuse = await new Browser(reopened, ca).post("/oauth/token", {
      client_id: "piper-link",
      grant_type: "refresh_token",
      refresh_token: last,
    });
    assert.equal(reuse.json["error"], "invalid_grant");
    assert.equal(cli(e, ["stop"]).code, 0);
  });

  it("browser flow: PKCE through the loopback redirect, a forged callback is refused and the real one still completes, one callback only; a revoked refresh token means 'sign in again', not a crash", async () => {
    const e = await newEnv();
    const { port, authorityUrl, ca } = await startLink(e);
    const person = new Browser(`http://127.0.0.1:${port}`);
    const first = await person.follow("/signup?next=%2Fdevice");
    await person.post("/signup", {
      csrf: csrfOf(first.text),
      next: "/device",
      name: "Sam",
      email: "sam@example.com",
      password: "correct horse battery",
    });

    // A forged callback (wrong state) is refused and the sign-in keeps waiting (issue 16 item 1);
    // the real callback then completes it, and the listener takes no second callback.
    const login = runLogin(e, ["--no-browser"]);
    await waitFor(() => /oauth\/authorize\?/.test(login.stderr()), "the sign-in address");
    const url1 = /(http:\/\/\S+\/oauth\/authorize\?\S+)/.exec(login.stderr())?.[1] ?? "";
    const back1 = await person.get(url1);
    const callback1 = new URL(back1.location ?? "");
    assert.equal(callback1.hostname, "127.0.0.1");
    const forged = new URL(callback1);
    forged.searchParams.set("state", "forged");
    forged.searchParams.set("code", "ATTACKER");
    const refused = await person.get(forged.toString());
    assert.equal(refused.status, 400);
    assert.match(refused.text, /state mismatch/);
    const done = await person.get(callback1.toString());
    assert.match(done.text, /You can close this tab/);
    const r2 = await login.done;
    assert.equal(r2.code, 0, login.stderr());
    assert.equal(LinkStatusSchema.parse(JSON.parse(r2.stdout)).authority?.account, "oauth");
    await assert.rejects(person.get(callback1.toString()), /ECONNREFUSED/);

    // The refresh token is revoked elsewhere (another device signs this one out).
    await new Browser(authorityUrl, ca).post("/oauth/revoke", { token: await keychainItem(e, "refresh-token") });
    assert.equal(cli(e, ["stop"]).code, 0);
    await startLink(e);
    const listed = cli(e, ["secrets", "list"]);
    assert.notEqual(listed.code, 0);
    assert.match(listed.stderr, /[Ss]ign in again|not signed in|token/);
    const status = cliJson(e, ["status"], LinkStatusSchema);
    assert.match(status.authority?.signInError ?? "", /Sign in again with `piper-link login`/);
    assert.equal(cli(e, ["stop"]).code, 0);
  });

  it("a callback with the right state but a code the authority refuses shows the failure in the browser, not 'signed in', and login fails", async () => {
    const e = await newEnv();
    const { port } = await startLink(e);
    const person = new Browser(`http://127.0.0.1:${port}`);
    const first = await person.follow("/signup?next=%2Fdevice");
    await person.post("/signup", {
      csrf: csrfOf(first.text),
      next: "/device",
      name: "Kim",
      email: "kim@example.com",
      password: "correct horse battery",
    });
    const login = runLogin(e, ["--no-browser"]);
    await waitFor(() => /oauth\/authorize\?/.test(login.stderr()), "the sign-in address");
    const url = /(http:\/\/\S+\/oauth\/authorize\?\S+)/.exec(login.stderr())?.[1] ?? "";
    const callback = new URL((await person.get(url)).location ?? "");
    callback.searchParams.set("code", "not-a-code-the-authority-issued");
    const page = await person.get(callback.toString());
    assert.equal(page.status, 400);
    assert.match(page.text, /did not accept this sign-in/);
    assert.doesNotMatch(page.text, /You can close this tab/);
    const r = await login.done;
    assert.notEqual(r.code, 0);
    assert.equal(cliJson(e, ["status"], LinkStatusSchema).state, "logged_out");
    assert.equal(cli(e, ["stop"]).code, 0);
  });
});

/** A raw HTTP exchange with the Link, with exactly the headers given (a browser's Origin, a rebinding Host). */
function rawRequest(
  port: number,
  method: string,
  target: string,
  headers: Record<string, string>,
  body = "",
): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method,
        path: target,
        headers: { ...headers, "Content-Length": String(Buffer.byteLength(body)) },
      },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

describe("the sign-in pages on the Link's own origin (issue 15 item 3)", () => {
  it("are forwarded over the pinned connection with http-safe cookies and their own CSP; cross-site posts, rebinding hosts and other authority paths do not pass", async () => {
    const e = await newEnv();
    const { port } = await startLink(e);
    try {
      const host = `127.0.0.1:${port}`;
      const signup = await rawRequest(port, "GET", "/signup?next=%2Fdevice", {
        Host: host,
        Cookie: "other_app=secret-of-another-app",
      });
      assert.equal(signup.status, 200);
      assert.match(signup.text, /Create your local account/);
      assert.match(signup.text, /action="\/signup"/, "the form posts back to this origin");
      const cookies = signup.headers["set-cookie"] ?? [];
      assert.ok(
        cookies.some((c) => c.startsWith("piper_csrf=")),
        "the CSRF cookie is set on the Link's origin",
      );
      for (const c of cookies) assert.doesNotMatch(c, /;\s*secure/i, "no Secure flag on a plain-http origin");
      for (const c of cookies) assert.match(c, /HttpOnly/i);
      assert.match(
        String(signup.headers["content-security-policy"] ?? ""),
        /default-src 'none'.*form-action 'self' http:\/\/127\.0\.0\.1:\*/,
      );
      assert.equal(signup.headers["referrer-policy"], "same-origin", "so a same-origin form post carries its Origin");
      assert.equal(signup.headers["cross-origin-resource-policy"], "same-origin");
      assert.equal(signup.headers["x-frame-options"], "DENY");
      const csrfCookie = cookies.find((c) => c.startsWith("piper_csrf="))?.split(";")[0] ?? "";
      const form = new URLSearchParams({
        csrf: csrfOf(signup.text),
        next: "/device",
        name: "Eve",
        email: "eve@example.com",
        password: "correct horse battery",
      }).toString();
      const formHeaders = { Host: host, Cookie: csrfCookie, "Content-Type": "application/x-www-form-urlencoded" };

      // A page on another site posting the form (even with a valid token it cannot have) is refused by the guard.
      const crossSite = await rawRequest(
        port,
        "POST",
        "/signup",
        { ...formHeaders, Origin: "https://evil.example" },
        form,
      );
      assert.equal(crossSite.status, 403);
      assert.match(crossSite.text, /forbidden_origin/);
      const nullOrigin = await rawRequest(port, "POST", "/signup", { ...formHeaders, Origin: "null" }, form);
      assert.equal(nullOrigin.status, 403);
      // DNS rebinding: a foreign Host never reaches the authority.
      const rebound = await rawRequest(port, "GET", "/login", { Host: `evil.example:${port}` });
      assert.equal(rebound.status, 403);
      // Without the CSRF cookie the authority itself refuses the form.
      const noCsrf = await rawRequest(
        port,
        "POST",
        "/signup",
        { Host: host, Origin: `http://${host}`, "Content-Type": "application/x-www-form-urlencoded" },
        form,
      );
      assert.equal(noCsrf.status, 403);
      assert.match(noCsrf.text, /form expired/);
      // Only the sign-in pages are forwarded: not the token endpoint, not the Link API.
      assert.equal(
        (
          await rawRequest(
            port,
            "POST",
            "/oauth/token",
            { ...formHeaders, Origin: `http://${host}` },
            "grant_type=refresh_token",
          )
        ).status,
        405,
      );
      assert.equal((await rawRequest(port, "GET", "/v1/grants", { Host: host })).status, 404);
      assert.equal(
        (await rawRequest(port, "POST", "/oauth/authorize", { ...formHeaders, Origin: `http://${host}` }, form)).status,
        405,
      );
      // A body that is not a form, or larger than one, gets the form's own words (and the Link's codes).
      const notAForm = await rawRequest(
        port,
        "POST",
        "/signup",
        { Host: host, Origin: `http://${host}`, "Content-Type": "text/plain" },
        form,
      );
      assert.equal(notAForm.status, 415);
      assert.match(notAForm.text, /"error":"bad_request".*URL-encoded/);
      const tooLarge = await rawRequest(
        port,
        "POST",
        "/signup",
        { ...formHeaders, Origin: `http://${host}` },
        `a=${"x".repeat(20_000)}`,
      );
      assert.equal(tooLarge.status, 413);
      assert.match(tooLarge.text, /larger than a sign-in form/);

      // The same-origin post (what the page's own form sends) signs up and redirects on this origin.
      const created = await rawRequest(port, "POST", "/signup", { ...formHeaders, Origin: `http://${host}` }, form);
      assert.equal(created.status, 303, created.text);
      assert.equal(created.headers.location, "/device");
      const session = (created.headers["set-cookie"] ?? []).find((c) => c.startsWith("piper_session="));
      assert.ok(session, "the session cookie comes back");
      assert.doesNotMatch(session, /;\s*secure/i);
      assert.match(session, /SameSite=Lax/i);
    } finally {
      cli(e, ["stop"]);
    }
  });
});

describe("the sign-in proxy's rewriting rules", () => {
  it("forwards only the authority's cookies, drops Secure on the way back, keeps redirects on the Link's origin", () => {
    assert.equal(
      authorityCookies("other_app=1; piper_csrf=abc; piper_session=s1; piper_sessionx=2"),
      "piper_csrf=abc; piper_session=s1",
    );
    assert.equal(authorityCookies(undefined), "");
    assert.deepEqual(
      rewriteSetCookies([
        "piper_session=s; Max-Age=43200; Path=/; HttpOnly; Secure; SameSite=Lax",
        "tracker=1; Path=/",
        "piper_csrf=c; Secure",
      ]),
      ["piper_session=s; Max-Age=43200; Path=/; HttpOnly; SameSite=Lax", "piper_csrf=c"],
    );
    const authority = new URL("https://127.0.0.1:31478");
    assert.equal(rewriteLocation("/login?next=%2Fdevice", authority), "/login?next=%2Fdevice");
    assert.equal(rewriteLocation("https://127.0.0.1:31478/device?user_code=X", authority), "/device?user_code=X");
    assert.equal(
      rewriteLocation("http://127.0.0.1:40123/callback?code=c&state=s", authority),
      "http://127.0.0.1:40123/callback?code=c&state=s",
    );
  });
});

describe("login without a browser in sight (issue 15 item 3)", () => {
  it("a browser sign-in that has not come back mentions --device after the delay", async () => {
    const e = await newEnv();
    await startLink(e);
    try {
      const login = runLogin(e, ["--no-browser", "--device-hint-after", "300"]);
      await waitFor(() => /oauth\/authorize\?/.test(login.stderr()), "the sign-in address");
      assert.doesNotMatch(login.stderr(), /--device/, "no hint before the delay");
      await waitFor(
        () => login.stderr().includes("Press Ctrl+C and run `piper-link login --device`"),
        "the --device hint",
      );
      assert.match(login.stderr(), /Waiting for the browser… On a machine without a browser\?/);
    } finally {
      cli(e, ["stop"]);
    }
  });

  it("over SSH without a display, plain `login` goes to the device flow and says how to forward the Link's port", async () => {
    const e = await newEnv();
    const { port } = await startLink(e);
    try {
      const env: NodeJS.ProcessEnv = { ...e.env, SSH_CONNECTION: "192.0.2.10 50000 192.0.2.20 22" };
      delete env["DISPLAY"];
      delete env["WAYLAND_DISPLAY"];
      const login = runLogin(e, [], env);
      await waitFor(() => /enter the code [A-Z]{4}-[A-Z]{4}/.test(login.stderr()), "the device code");
      assert.match(login.stderr(), /No display here/);
      assert.match(login.stderr(), new RegExp(`open http://127\\.0\\.0\\.1:${port}/device and enter the code`));
      assert.match(login.stderr(), new RegExp(`ssh -L ${port}:127\\.0\\.0\\.1:${port} `));
      assert.doesNotMatch(login.stderr(), /oauth\/authorize/);

      // The person completes it from "another machine" through the forwarded port.
      const code = /enter the code ([A-Z]{4}-[A-Z]{4})/.exec(login.stderr())?.[1] ?? "";
      const person = new Browser(`http://127.0.0.1:${port}`);
      const signup = await person.follow(`/device?user_code=${code}`);
      const next = /name="next" value="([^"]+)"/.exec(signup.text)?.[1]?.replace(/&#38;/g, "&") ?? "";
      const created = await person.post("/signup", {
        csrf: csrfOf(signup.text),
        next,
        name: "Ash",
        email: "ash@example.com",
        password: "correct horse battery",
      });
      const devicePage = await person.follow(created.location ?? "");
      const connected = await person.post("/device", { csrf: csrfOf(devicePage.text), user_code: code });
      assert.match(connected.text, /You can close this tab/);
      const r = await login.done;
      assert.equal(r.code, 0, login.stderr());
      assert.equal(LinkStatusSchema.parse(JSON.parse(r.stdout)).authority?.account, "oauth");
    } finally {
      cli(e, ["stop"]);
    }
  });
});
