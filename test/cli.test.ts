// The `piper-link` command as a person runs it: real processes, the compiled CLI (bin/ -> dist/),
// the real keyring, and each test in its own temporary HOME and profile.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs/promises";
import net from "node:net";
import { after, describe, it } from "node:test";
import { DAEMON_NODE_FLAGS } from "../src/main/core/runtime/daemon-flags.js";
import { createKeychainStore } from "../src/main/core/runtime/keychain.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import { CloseCode } from "../src/shared/protocol.js";
import { BIN, cli as runCli, json, newEnv, stopAll, type CliEnv } from "./cli-helpers.js";
import { connectAgent, testLinkEnv, waitFor } from "./helpers.js";

function cli(e: CliEnv, ...args: string[]): { code: number; stdout: string; stderr: string } {
  return runCli(e, args);
}

after(stopAll);

describe("piper-link CLI", () => {
  it("starts in the background, serves the instance ID set through the CLI, shows status, and stops", async () => {
    const e = await newEnv();
    const start = cli(e, "start", "--port", "0", "--json");
    assert.equal(start.code, 0, start.stderr);
    const status = LinkStatusSchema.parse(json(start.stdout));
    assert.equal(status.state, "logged_out");
    // The background daemon runs with its memory flags (V8 reads them only at process start).
    if (process.platform === "linux") {
      const argv = (await fs.readFile(`/proc/${status.pid}/cmdline`, "utf8")).split("\0");
      for (const flag of DAEMON_NODE_FLAGS)
        assert.ok(argv.includes(flag), `daemon argv ${argv.join(" ")} lacks ${flag}`);
    }

    // Signed out: one true sentence, no account line that reads like a yes.
    const before = cli(e, "status");
    assert.match(before.stdout, /signed in: no — /);
    assert.doesNotMatch(before.stdout, /account:/);
    assert.ok(status.pyper != null, "the pyper-sdk endpoints listen once the Link serves");
    assert.match(before.stdout, new RegExp(`pyper TLS: https://127\\.0\\.0\\.1:${status.pyper.port}/`));

    const set = cli(e, "dev", "set-instance", "inst_cli_123456789");
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /pushed to connected agents/);

    // What a pyper-sdk agent does: GET the context endpoint.
    const res = await fetch(`http://localhost:${status.port}/piper-link-context`);
    assert.deepEqual(await res.json(), { instanceId: "inst_cli_123456789" });

    const python = spawnSync(
      "python3",
      [
        "-c",
        `import json,urllib.request;print(json.load(urllib.request.urlopen("http://localhost:${status.port}/piper-link-context",timeout=1))["instanceId"])`,
      ],
      { encoding: "utf8" },
    );
    assert.equal(python.error, undefined, "python3 is part of the test machine (.ci/run installs it)");
    assert.equal(python.stdout.trim(), "inst_cli_123456789", python.stderr);

    const human = cli(e, "status");
    assert.equal(human.code, 0);
    assert.match(human.stdout, /signed in: yes, instance inst_••••••6789/);
    assert.ok(!human.stdout.includes("inst_cli_123456789"), "status must not print the full instance ID");

    const again = cli(e, "start", "--port", "0");
    assert.equal(again.code, 4, again.stdout + again.stderr);
    assert.match(again.stderr, /already running/);

    const logout = cli(e, "logout", "--json");
    assert.equal(logout.code, 0);
    assert.deepEqual(json(logout.stdout), { loggedOut: true, linkRunning: true });
    assert.equal((await fetch(`http://localhost:${status.port}/piper-link-context`)).status, 503);

    const stop = cli(e, "stop", "--json");
    assert.equal(stop.code, 0, stop.stderr);
    await assert.rejects(fs.stat(e.paths.discoveryFile), { code: "ENOENT" });
    const after = cli(e, "status", "--json");
    assert.equal(after.code, 3);
    assert.equal(json(after.stdout)["error"], "not_running");
  });

  it("keeps the instance ID set while stopped and serves it on the next start", async () => {
    const e = await newEnv();
    assert.equal(cli(e, "dev", "set-instance", "inst_offline_0001").code, 0);
    const start = cli(e, "start", "--port", "0", "--json");
    assert.equal(start.code, 0, start.stderr);
    const port = LinkStatusSchema.parse(json(start.stdout)).port;
    assert.deepEqual(await (await fetch(`http://127.0.0.1:${port}/piper-link-context`)).json(), {
      instanceId: "inst_offline_0001",
    });
    assert.equal(cli(e, "stop").code, 0);
    assert.equal(cli(e, "logout").code, 0);
  });

  it("shuts down on SIGTERM: agents get 1001 and the discovery file is removed", async () => {
    const e = await newEnv();
    const daemon: ChildProcess = spawn(process.execPath, [BIN, "start", "--foreground", "--port", "0", "--json"], {
      env: e.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    daemon.stdout?.on("data", (c: Buffer) => (out += c.toString()));
    await waitFor(() => out.trim().endsWith("}"), "the foreground daemon to print its status");
    const status = LinkStatusSchema.parse(json(out));
    const agent = await connectAgent(status.url);
    await agent.hello(1);
    const exited = new Promise<number | null>((r) => daemon.on("exit", (code) => r(code)));
    daemon.kill("SIGTERM");
    assert.equal(await agent.closed, CloseCode.goingAway);
    assert.equal(await exited, 0);
    await assert.rejects(fs.stat(e.paths.discoveryFile), { code: "ENOENT" });
    await assert.rejects(fs.stat(e.paths.lockFile), { code: "ENOENT" });
  });

  it("falls back to a free port when the preferred one is taken and says so", async () => {
    const e = await newEnv();
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      const start = cli(e, "start", "--port", String(taken));
      assert.equal(start.code, 0, start.stderr);
      assert.match(start.stdout, new RegExp(`note: +port ${taken} was taken; SDKs find this port through`));
      const status = LinkStatusSchema.parse(json(cli(e, "status", "--json").stdout));
      assert.notEqual(status.port, taken);
      assert.equal(status.portFallback, true);
      const discovery = json(await fs.readFile(e.paths.discoveryFile, "utf8"));
      assert.equal(discovery["url"], `ws://127.0.0.1:${status.port}/v1/link`);
      assert.equal(cli(e, "stop").code, 0);
    } finally {
      blocker.close();
    }
  });

  it("ignores stale discovery and lock files left by a dead process", async () => {
    const e = await newEnv();
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    const deadPid = Number(dead.stdout);
    await fs.mkdir(e.paths.runtimeDir, { recursive: true, mode: 0o700 });
    await fs.writeFile(e.paths.lockFile, JSON.stringify({ pid: deadPid }));
    await fs.writeFile(
      e.paths.discoveryFile,
      JSON.stringify({ url: "ws://127.0.0.1:1/v1/link", pid: deadPid, version: "0.0.0", startedAt: "x" }),
    );
    const start = cli(e, "start", "--port", "0", "--json");
    assert.equal(start.code, 0, start.stderr);
    const discovery = json(await fs.readFile(e.paths.discoveryFile, "utf8"));
    assert.notEqual(discovery["pid"], deadPid);
    assert.equal(cli(e, "stop").code, 0);
  });

  it("recovers when the data folder is wiped but the keychain kept: signed out, the authority connected, sign-in and secrets work again", async () => {
    const e = await newEnv();
    const keychain = createKeychainStore({ env: testLinkEnv(), profile: e.profile });
    const connected = (): boolean =>
      LinkStatusSchema.parse(json(cli(e, "status", "--json").stdout)).authority?.connected === true;
    assert.equal(cli(e, "start", "--port", "0").code, 0);
    assert.equal(cli(e, "dev", "sign-in").code, 0);
    const dataKey = await keychain.get("authority-data-key");
    const oldToken = await keychain.get("authority-link-token");
    assert.ok(dataKey !== null && oldToken !== null);
    assert.equal(cli(e, "stop").code, 0);

    await fs.rm(e.paths.dataDir, { recursive: true, force: true });
    const start = cli(e, "start", "--port", "0", "--json");
    assert.equal(start.code, 0, start.stderr);
    // Not "signed in" to an instance the new database has never heard of.
    assert.equal(LinkStatusSchema.parse(json(start.stdout)).state, "logged_out");
    await waitFor(connected, "the embedded authority to accept the Link's new token");
    const signIn = cli(e, "dev", "sign-in");
    assert.equal(signIn.code, 0, signIn.stdout + signIn.stderr);
    const set = runCli(e, ["secrets", "set", "AFTER_WIPE"], "value\n");
    assert.equal(set.code, 0, set.stdout + set.stderr);
    const log = await fs.readFile(e.paths.logFile, "utf8");
    assert.match(log, /its database is gone/);
    // The old token named a user of the removed database; the data key is kept (it may be the only key to a moved copy).
    assert.notEqual(await keychain.get("authority-link-token"), oldToken);
    assert.equal(await keychain.get("authority-data-key"), dataKey);

    // With the database in place nothing is replaced: the next start is signed in, with the same token.
    const token = await keychain.get("authority-link-token");
    assert.equal(cli(e, "stop").code, 0);
    const again = cli(e, "start", "--port", "0", "--json");
    assert.equal(again.code, 0, again.stderr);
    assert.equal(LinkStatusSchema.parse(json(again.stdout)).state, "ready");
    assert.equal(await keychain.get("authority-link-token"), token);
    await waitFor(connected, "the embedded authority to accept the Link's token");
    assert.match(cli(e, "secrets", "list").stdout, /AFTER_WIPE/);
    assert.equal(cli(e, "stop").code, 0);
  });

  it("refuses profile names that are not plain words (from --profile or PIPER_LINK_PROFILE) before anything is made, naming the rule", async () => {
    const e = await newEnv();
    for (const bad of ["a/b", "../up", ".hidden", "-dash", "$x", "%h", "a b", "x".repeat(65)]) {
      const viaOption = cli(e, "--profile", bad, "start", "--port", "0");
      // A build without the rule starts a Link here: stop it, so a failing run leaves nothing behind.
      if (viaOption.code === 0) cli(e, "--profile", bad, "stop");
      assert.equal(viaOption.code, 2, `--profile ${bad}: ${viaOption.stdout}${viaOption.stderr}`);
      assert.match(
        viaOption.stderr,
        /^piper-link: .*A profile name is 1 to 64 characters: letters, digits, '\.', '_' and '-', starting with a letter or digit\./,
      );
      const viaEnv = runCli({ ...e, env: { ...e.env, PIPER_LINK_PROFILE: bad } }, ["status", "--json"]);
      assert.equal(viaEnv.code, 2, `PIPER_LINK_PROFILE=${bad}: ${viaEnv.stdout}${viaEnv.stderr}`);
      assert.equal(json(viaEnv.stdout)["error"], "usage");
      assert.match(String(json(viaEnv.stdout)["message"]), /PIPER_LINK_PROFILE.*A profile name is/);
    }
    // An empty --profile (an unset shell variable) is refused too; an empty PIPER_LINK_PROFILE is the default.
    const empty = cli(e, "--profile", "", "status", "--json");
    assert.equal(empty.code, 2, empty.stdout + empty.stderr);
    assert.match(String(json(empty.stdout)["message"]), /--profile was given an empty name/);
    // Nothing was created for any of them: no data, state or runtime folders at all.
    for (const dir of ["data", "state", "run"])
      await assert.rejects(fs.stat(`${e.home}/${dir}`), { code: "ENOENT" }, dir);
    // A profile that is not the default is named in the advice, so the command given works as written.
    const notRunning = cli(e, "status");
    assert.equal(notRunning.code, 3);
    assert.match(
      notRunning.stderr,
      new RegExp(
        `not running \\(profile ${e.profile}\\)\\. Start it with \`piper-link --profile ${e.profile} start\`\\.`,
      ),
    );
  });

  it("has --help on every command, exit code 2 for usage errors, and JSON errors with --json", async () => {
    const e = await newEnv();
    for (const args of [
      [],
      ["start"],
      ["status"],
      ["stop"],
      ["logout"],
      ["login"],
      ["dev"],
      ["dev", "set-instance"],
      ["dev", "sign-in"],
      ["secrets"],
      ["secrets", "set"],
      ["secrets", "list"],
      ["secrets", "rm"],
      ["requests"],
      ["approve"],
      ["deny"],
      ["grants"],
      ["revoke"],
      ["activity"],
      ["run"],
      ["ui"],
      ["service"],
      ["service", "install"],
      ["service", "uninstall"],
      ["service", "status"],
      ["authority"],
      ["authority", "serve"],
      ["authority", "create-user"],
    ]) {
      const r = cli(e, ...args, "--help");
      assert.equal(r.code, 0, args.join(" "));
      assert.match(r.stdout, /Usage: piper-link/);
    }
    assert.equal(cli(e, "--version").stdout.trim(), "0.1.0");
    const bad = cli(e, "start", "--port", "99999");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /port number/);
    assert.equal(cli(e, "frobnicate").code, 2);
    const notRunning = cli(e, "stop", "--json");
    assert.equal(notRunning.code, 3);
    assert.deepEqual(Object.keys(json(notRunning.stdout)), ["error", "message"]);
    assert.equal(cli(e, "ui", "--json").code, 3, "no window address without a running Link");
  });
});
