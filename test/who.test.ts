// Who is signed in (issue 15 item 7), on real processes: the compiled CLI, a Link with its embedded
// authority (HTTPS, SQLite), the real keyring. `status` (human and --json) names the account and
// this machine as the authority's `GET /v1/me` says, after sign-in and again after a restart; and
// `stop` ends the Link within 2 s while a browser sign-in nobody completes is still waiting.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import os from "node:os";
import { after, describe, it } from "node:test";
import { signedInAs, trayMenu, trayState, trayToolTip } from "../src/main/app/tray.js";
import { DEFAULT_IDLE_LOCK_MINUTES, PIN_TRIES_ALLOWED, type VaultStatus } from "../src/shared/presence.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import { Browser, csrfOf } from "./browser-helpers.js";
import { BIN, cli, cliJson, newEnv, stopAll, type CliEnv } from "./cli-helpers.js";
import { isPidAlive } from "../src/main/core/runtime/files.js";
import { waitFor } from "./helpers.js";

after(stopAll);

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill();
});

/** `piper-link login <args>` in the background; its stderr so far and its exit. */
function runLogin(
  e: CliEnv,
  args: string[],
): { child: ChildProcess; stderr: () => string; done: Promise<{ code: number | null; stdout: string }> } {
  const child = spawn(process.execPath, [BIN, "login", ...args, "--json"], {
    env: e.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  return {
    child,
    stderr: () => err,
    done: new Promise((resolve) => child.on("exit", (code) => resolve({ code, stdout: out }))),
  };
}

/** True while `pid` runs (a zombie the test runner has not reaped yet counts as gone). */
const alive = isPidAlive;

describe("who is signed in, in the tray", () => {
  const actions = {
    showWindow: () => undefined,
    lock: () => undefined,
    signOut: () => undefined,
    quit: () => undefined,
  };
  const vault: VaultStatus = {
    state: "unlocked",
    lockedReason: null,
    unattended: false,
    pinSet: true,
    passkeys: 0,
    proofs: ["pin"],
    idleLockMinutes: DEFAULT_IDLE_LOCK_MINUTES,
    legacyGrants: 0,
    pinFailures: 0,
    pinTriesAllowed: PIN_TRIES_ALLOWED,
  };
  const base = { state: "ready" as const, vault, instanceIdRedacted: "inst_••••••abcd", agents: [] };

  it("the tooltip and a disabled menu line name the account and the machine", () => {
    const status = { ...base, account: { name: "Pat Doe", email: "pat@example.com" }, machine: "pat-laptop" };
    assert.equal(signedInAs(status), "Pat Doe (pat@example.com) on pat-laptop");
    assert.equal(trayToolTip("normal", 0, status), "Piper Link — Pat Doe (pat@example.com) on pat-laptop");
    assert.equal(
      trayToolTip("pending", 2, status),
      "Piper Link — Pat Doe (pat@example.com) on pat-laptop — 2 pending request(s)",
    );
    const line = trayMenu(status, 0, actions).find((item) => item.label?.startsWith("Signed in"));
    assert.deepEqual(line && { label: line.label, enabled: line.enabled }, {
      label: "Signed in as Pat Doe (pat@example.com) on pat-laptop",
      enabled: false,
    });
  });

  it("falls back to the instance while the authority has not said, and says nobody when signed out", () => {
    assert.equal(signedInAs({ account: null, machine: null }), null);
    assert.ok(
      trayMenu({ ...base, account: null, machine: null }, 0, actions).some(
        (item) => item.label === "Signed in — machine inst_••••••abcd",
      ),
    );
    assert.equal(
      trayToolTip("signed-out", 0, { account: { name: "Pat", email: null }, machine: "m" }),
      "Piper Link — not signed in",
    );
    assert.equal(
      signedInAs({ account: { name: "x".repeat(300), email: null }, machine: null })?.length,
      100,
      "cut to keep the menu narrow",
    );
  });

  it("locked: the tray says Locked and offers Unlock… (the window) and Quit; unlocked, it offers Lock now", () => {
    let opened = 0;
    let locked = 0;
    const spy = {
      ...actions,
      showWindow: () => {
        opened++;
      },
      lock: () => {
        locked++;
      },
    };
    const shut = {
      ...base,
      vault: { ...vault, state: "locked" as const, lockedReason: "idle" as const },
      account: null,
      machine: null,
    };
    assert.equal(trayState(shut, 3), "locked", "locked wins over pending requests");
    assert.equal(trayToolTip("locked", 3), "Piper Link — Locked");
    const menu = trayMenu(shut, 3, spy);
    assert.deepEqual(
      menu.map((i) => i.label ?? "-"),
      ["Locked", "Unlock…", "-", "Quit Piper Link"],
    );
    menu.find((i) => i.label === "Unlock…")?.click?.();
    assert.equal(opened, 1);
    assert.equal(trayState({ ...shut, vault: { ...vault, state: "new" } }, 0), "locked");
    const open = trayMenu({ ...base, account: null, machine: null }, 0, spy);
    open.find((i) => i.label === "Lock now")?.click?.();
    assert.equal(locked, 1);
  });
});

describe("who is signed in", () => {
  it("the developer sign-in: status names the local account and the machine's name", async () => {
    const e = await newEnv();
    cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    const before = cliJson(e, ["status"], LinkStatusSchema);
    assert.equal(before.account, null);
    assert.equal(before.machine, null);

    const signedIn = cliJson(e, ["dev", "sign-in", "--name", "who-test box"], LinkStatusSchema);
    assert.deepEqual(signedIn.account, { name: "Local user", email: null });
    assert.equal(signedIn.machine, "who-test box");
    const human = cli(e, ["status"]);
    assert.match(human.stdout, /signed in: yes, as Local user, instance inst_/);
    assert.match(human.stdout, /machine: {3}who-test box/);
    assert.equal(cli(e, ["stop"]).code, 0);
  });

  it("a person's sign-in: name and email after login, again after a restart, and nobody after logout", async () => {
    const e = await newEnv();
    const { port } = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    const login = runLogin(e, ["--device"]);
    await waitFor(() => /enter the code [A-Z]{4}-[A-Z]{4}/.test(login.stderr()), "the device code to be printed");
    const userCode = /enter the code ([A-Z]{4}-[A-Z]{4})/.exec(login.stderr())?.[1] ?? "";
    const person = new Browser(`http://127.0.0.1:${port}`);
    const signup = await person.follow(`/device?user_code=${userCode}`);
    const next = /name="next" value="([^"]+)"/.exec(signup.text)?.[1]?.replace(/&#38;/g, "&") ?? "";
    const created = await person.post("/signup", {
      csrf: csrfOf(signup.text),
      next,
      name: "Pat Doe",
      email: "pat@example.com",
      password: "correct horse battery",
    });
    const devicePage = await person.follow(created.location ?? "");
    await person.post("/device", { csrf: csrfOf(devicePage.text), user_code: userCode });
    const result = await login.done;
    assert.equal(result.code, 0, login.stderr());

    const status = LinkStatusSchema.parse(JSON.parse(result.stdout));
    assert.deepEqual(status.account, { name: "Pat Doe", email: "pat@example.com" });
    assert.equal(status.machine, os.hostname(), "a browser or device sign-in registers this machine by its host name");
    assert.match(cli(e, ["status"]).stdout, /signed in: yes, as Pat Doe <pat@example\.com>, instance inst_/);

    // After a restart the Link asks the authority again (nothing about the account is kept on disk).
    assert.equal(cli(e, ["stop"]).code, 0);
    cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    const restarted = cliJson(e, ["status"], LinkStatusSchema);
    assert.deepEqual(restarted.account, { name: "Pat Doe", email: "pat@example.com" });
    assert.equal(restarted.machine, os.hostname());

    assert.equal(cli(e, ["logout"]).code, 0);
    const out = cliJson(e, ["status"], LinkStatusSchema);
    assert.equal(out.account, null);
    assert.equal(out.machine, null);
    assert.equal(cli(e, ["stop"]).code, 0);
  });

  it("`stop` ends the Link within 2 seconds while a browser sign-in nobody completes is waiting", async () => {
    const e = await newEnv();
    const { pid } = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    const login = runLogin(e, ["--no-browser"]);
    await waitFor(() => /Waiting…/.test(login.stderr()), "the browser sign-in to start");
    // Some local process holds a half-sent request open on the sign-in's callback listener: a
    // plain `server.close()` would wait for it (up to Node's 60 s header timeout).
    const authorizeUrl = /(http:\/\/\S+\/oauth\/authorize\?\S+)/.exec(login.stderr())?.[1] ?? "";
    const redirect = new URL(new URL(authorizeUrl).searchParams.get("redirect_uri") ?? "");
    const holder = net.connect(Number(redirect.port), "127.0.0.1");
    await new Promise<void>((resolve) => holder.once("connect", () => resolve()));
    holder.write("GET /callback?state=x HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    holder.on("error", () => undefined);

    // What the CLI itself costs on this machine (start-up and one call), to subtract below.
    const b0 = Date.now();
    assert.equal(cli(e, ["status"]).code, 0);
    const baselineMs = Date.now() - b0;

    const t0 = Date.now();
    const stopped = cli(e, ["stop"]);
    const stopMs = Date.now() - t0;
    assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
    // `stop` returns once the process is gone, and that takes at most 2 s beyond the CLI's own cost.
    assert.equal(alive(pid), false, "the Link process is gone when `stop` says stopped");
    assert.ok(stopMs - baselineMs <= 2000, `stop took ${stopMs} ms (the CLI alone ${baselineMs} ms)`);
    holder.destroy();
    // The waiting `login` is told, not left hanging.
    const ended = await login.done;
    assert.notEqual(ended.code, 0);
  });
});
