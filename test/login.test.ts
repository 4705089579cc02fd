// Signing in once (issue 5), end to end on real processes: the compiled CLI runs `piper-link login`
// against a Link with its embedded authority (HTTPS, self-signed, pinned), the person's side is
// driven over HTTP by a cookie-keeping client, and the real keyring holds the result.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { after, describe, it } from "node:test";
import { z } from "zod";
import { LinkStatusSchema } from "../src/shared/control.js";
import { Browser, csrfOf } from "./browser-helpers.js";
import { BIN, cli, cliJson, newEnv, stopAll, type CliEnv } from "./cli-helpers.js";
import { CHROMIUM_SKIP, launchChromium } from "./chromium.js";
import { waitFor } from "./helpers.js";

after(stopAll);

interface Running {
  stderr: () => string;
  done: Promise<{ code: number | null; stdout: string }>;
}

function runLogin(e: CliEnv, args: string[]): Running {
  const child = spawn(process.execPath, [BIN, "login", ...args, "--json"], { env: e.env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  return { stderr: () => err, done: new Promise((resolve) => child.on("exit", (code) => resolve({ code, stdout: out }))) };
}

function keychainItem(e: CliEnv, item: string): string {
  return spawnSync("secret-tool", ["lookup", "service", `piper-link.${e.profile}`, "username", item], { encoding: "utf8" }).stdout.trim();
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
      // The embedded authority's certificate is self-signed (the Link pins it); the browser is told to accept it.
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await context.newPage();

      const login = runLogin(e, ["--no-browser"]);
      await waitFor(() => /oauth\/authorize\?/.test(login.stderr()), "the sign-in address");
      await page.goto(/(https:\/\/\S+\/oauth\/authorize\?\S+)/.exec(login.stderr())?.[1] ?? "");
      await page.getByRole("heading", { name: "Create your local account" }).waitFor();
      await page.getByLabel("Your name").fill("Robin");
      await page.getByLabel("Email").fill("robin@example.com");
      await page.getByLabel("Password (at least 10 characters)").fill("correct horse battery");
      await page.getByRole("button", { name: "Create account" }).click();
      await page.getByRole("heading", { name: "You're signed in" }).waitFor();
      assert.match(page.url(), /^http:\/\/127\.0\.0\.1:\d+\/callback\?/);
      const r = await login.done;
      assert.equal(r.code, 0, login.stderr());
      assert.equal(LinkStatusSchema.parse(JSON.parse(r.stdout)).authority?.account, "oauth");
      assert.match(keychainItem(e, "instance-id"), /^inst_/);
      assert.equal((await fetch(`http://127.0.0.1:${port}/piper-link-context`)).status, 200);

      // Sign in again with the device flow; the browser already has a session, so only the code is asked.
      const device = runLogin(e, ["--device"]);
      await waitFor(() => /enter the code [A-Z]{4}-[A-Z]{4}/.test(device.stderr()), "the device code");
      const code = /enter the code ([A-Z]{4}-[A-Z]{4})/.exec(device.stderr())?.[1] ?? "";
      await page.goto(/open (https:\/\/\S+\/device) and/.exec(device.stderr())?.[1] ?? "");
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
    const verification = /open (https:\/\/\S+\/device) and/.exec(login.stderr())?.[1] ?? "";
    assert.equal(verification, `${authorityUrl}/device`);

    const person = new Browser(authorityUrl, ca);
    const signup = await person.follow(`/device?user_code=${userCode}`);
    assert.match(signup.text, /Create your local account/, "first run offers to create the local account");
    const next = /name="next" value="([^"]+)"/.exec(signup.text)?.[1]?.replace(/&#38;/g, "&") ?? "";
    const created = await person.post("/signup", { csrf: csrfOf(signup.text), next, name: "Pat", email: "pat@example.com", password: "correct horse battery" });
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
    const instanceId = keychainItem(e, "instance-id");
    assert.match(instanceId, /^inst_/);
    assert.match(keychainItem(e, "refresh-token"), /^prt_/);
    assert.deepEqual(await (await fetch(`http://127.0.0.1:${port}/piper-link-context`)).json(), { instanceId });
    assert.equal(cli(e, ["secrets", "set", "K"], "v").code, 0, "Link API calls use the OAuth access token");

    // Restart: still signed in, same instance, the refresh token (rotated) still works.
    const before = keychainItem(e, "refresh-token");
    assert.equal(cli(e, ["stop"]).code, 0);
    const restarted = await startLink(e);
    assert.equal(cliJson(e, ["status"], LinkStatusSchema).state, "ready");
    assert.deepEqual(cliJson(e, ["secrets", "list"], z.array(z.object({ name: z.string() }).loose())).map((s) => s.name), ["K"]);
    assert.notEqual(keychainItem(e, "refresh-token"), before, "refresh tokens rotate");

    // Logout: revoked at the authority, gone from the keychain, agents told.
    const last = keychainItem(e, "refresh-token");
    assert.equal(cli(e, ["logout"]).code, 0);
    assert.equal(keychainItem(e, "refresh-token"), "");
    assert.equal(keychainItem(e, "instance-id"), "");
    const reuse = await new Browser(restarted.authorityUrl, ca).post("/oauth/token", { client_id: "piper-link", grant_type: "refresh_token", refresh_token: last });
    assert.equal(reuse.json["error"], "invalid_grant");
    assert.equal(cli(e, ["stop"]).code, 0);
  });

  it("browser flow: PKCE through the loopback redirect, a forged callback is refused and the real one still completes, one callback only; a revoked refresh token means 'sign in again', not a crash", async () => {
    const e = await newEnv();
    const { authorityUrl, ca } = await startLink(e);
    const person = new Browser(authorityUrl, ca);
    const first = await person.follow("/signup?next=%2Fdevice");
    await person.post("/signup", { csrf: csrfOf(first.text), next: "/device", name: "Sam", email: "sam@example.com", password: "correct horse battery" });

    // A forged callback (wrong state) is refused and the sign-in keeps waiting (issue 16 item 1);
    // the real callback then completes it, and the listener takes no second callback.
    const login = runLogin(e, ["--no-browser"]);
    await waitFor(() => /oauth\/authorize\?/.test(login.stderr()), "the sign-in address");
    const url1 = /(https:\/\/\S+\/oauth\/authorize\?\S+)/.exec(login.stderr())?.[1] ?? "";
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
    await new Browser(authorityUrl, ca).post("/oauth/revoke", { token: keychainItem(e, "refresh-token") });
    assert.equal(cli(e, ["stop"]).code, 0);
    await startLink(e);
    const listed = cli(e, ["secrets", "list"]);
    assert.notEqual(listed.code, 0);
    assert.match(listed.stderr, /[Ss]ign in again|not signed in|token/);
    const status = cliJson(e, ["status"], LinkStatusSchema);
    assert.match(status.authority?.signInError ?? "", /Sign in again with `piper-link login`/);
    assert.equal(cli(e, ["stop"]).code, 0);
  });
});
