// Start with the session: the systemd user unit (`piper-link service`) and the desktop app's XDG
// autostart entry, written where systemd and the desktop look for them (in a temporary HOME).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { z } from "zod";
import { autostartEntry, autostartFile, setXdgAutostart } from "../src/main/core/runtime/autostart.js";
import { DAEMON_NODE_FLAGS } from "../src/main/core/runtime/daemon-flags.js";
import { BIN, cli, cliJson, newEnv } from "./cli-helpers.js";

describe("service install (systemd user unit)", () => {
  it("writes a unit that runs this install's foreground daemon for the profile, and removes it", async () => {
    const e = await newEnv();
    e.env["XDG_CONFIG_HOME"] = path.join(e.home, "config");
    const installed = cliJson(e, ["service", "install", "--no-start"], z.object({ unit: z.string(), enabled: z.literal(false) }));
    assert.equal(installed.unit, path.join(e.home, "config", "systemd", "user", `piper-link-${e.profile}.service`));
    const unit = readFileSync(installed.unit, "utf8");
    assert.match(unit, /^\[Unit\]/);
    const exec = /^ExecStart=(.*)$/m.exec(unit)?.[1];
    // The daemon's V8 flags (its memory budget) come first, where Node reads them.
    assert.equal(exec, `${process.execPath} ${DAEMON_NODE_FLAGS.join(" ")} ${BIN} --profile ${e.profile} start --foreground`);
    assert.match(unit, /^Restart=on-failure$/m);
    assert.match(unit, /^RestartPreventExitStatus=4$/m);
    assert.match(unit, /^WantedBy=default.target$/m);
    // The ExecStart command is this install's CLI: run it as systemd would (split on spaces, no shell), asking for help.
    const [cmd, ...args] = exec.split(" ");
    const help = spawnSync(cmd ?? "", [...args.slice(0, -1), "--help"], { env: e.env, encoding: "utf8" });
    assert.equal(help.status, 0, help.stderr);

    assert.deepEqual(cliJson(e, ["service", "status"], z.object({ installed: z.boolean() })).installed, true);
    const removed = cliJson(e, ["service", "uninstall"], z.object({ removed: z.boolean() }));
    assert.equal(removed.removed, true);
    assert.ok(!existsSync(installed.unit));
    assert.equal(cliJson(e, ["service", "status"], z.object({ installed: z.boolean() })).installed, false);
  });

  it("says clearly when systemd cannot enable it (no user session), keeping the unit file", async () => {
    const e = await newEnv();
    e.env["XDG_CONFIG_HOME"] = path.join(e.home, "config");
    // No systemd user manager runs in this test's session, so enabling fails as it would in a container.
    e.env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=/nonexistent";
    e.env["XDG_RUNTIME_DIR"] = path.join(e.home, "no-runtime");
    const r = cli(e, ["service", "install", "--json"]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const body = z.object({ error: z.literal("service_failed"), message: z.string() }).parse(JSON.parse(r.stdout));
    assert.match(body.message, /systemctl --user/);
    assert.match(body.message, /piper-link start/);
    assert.ok(existsSync(path.join(e.home, "config", "systemd", "user", `piper-link-${e.profile}.service`)));
  });
});

describe("XDG autostart (desktop app, Linux)", () => {
  it("writes a desktop entry that starts the app hidden in the tray, and removes it", async () => {
    const e = await newEnv();
    const file = autostartFile({ XDG_CONFIG_HOME: path.join(e.home, "config") }, e.home);
    assert.equal(file, path.join(e.home, "config", "autostart", "piper-link.desktop"));
    await setXdgAutostart(true, ["/opt/Piper Link/piper-link", "--hidden"], file);
    const text = readFileSync(file, "utf8");
    assert.equal(text, autostartEntry(["/opt/Piper Link/piper-link", "--hidden"]));
    assert.match(text, /^Exec="\/opt\/Piper Link\/piper-link" --hidden$/m);
    assert.match(text, /^Type=Application$/m);
    await setXdgAutostart(false, [], file);
    assert.ok(!existsSync(file));
  });
});
