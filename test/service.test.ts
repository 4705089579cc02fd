// Start with the session: the systemd user unit (`piper-link service`) and the desktop app's XDG
// autostart entry, written where systemd and the desktop look for them (in a temporary HOME).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { z } from "zod";
import { autostartEntry, autostartFile, setXdgAutostart } from "../src/main/core/runtime/autostart.js";
import { DAEMON_NODE_FLAGS } from "../src/main/core/runtime/daemon-flags.js";
import { LEGACY_PASSPHRASE_FILE_ENV, PASSPHRASE_FILE_ENV, readLinkEnv } from "../src/main/core/runtime/env.js";
import { rememberKeychainChoice } from "../src/main/core/runtime/settings.js";
import { BIN, cli, cliJson, newEnv } from "./cli-helpers.js";

describe("service install (systemd user unit)", () => {
  it("writes a unit that runs this install's foreground daemon for the profile, and removes it", async () => {
    const e = await newEnv();
    e.env["XDG_CONFIG_HOME"] = path.join(e.home, "config");
    const installed = cliJson(
      e,
      ["service", "install", "--no-start"],
      z.object({
        unit: z.string(),
        enabled: z.literal(false),
        keychain: z.literal("os"),
        warnings: z.array(z.string()).length(1),
      }),
    );
    assert.match(installed.warnings[0] ?? "", /starts locked.*piper-link unlock/);
    assert.equal(installed.unit, path.join(e.home, "config", "systemd", "user", `piper-link-${e.profile}.service`));
    const unit = readFileSync(installed.unit, "utf8");
    assert.match(unit, /^\[Unit\]/);
    const exec = /^ExecStart=(.*)$/m.exec(unit)?.[1];
    // The daemon's V8 flags (its memory budget) come first, where Node reads them.
    assert.equal(
      exec,
      `${process.execPath} ${DAEMON_NODE_FLAGS.join(" ")} ${BIN} --profile ${e.profile} start --foreground`,
    );
    assert.match(unit, /^Restart=on-failure$/m);
    // 4: another Link runs for the profile; 5: a keychain error. Restarting every 2 s fixes neither.
    assert.match(unit, /^RestartPreventExitStatus=4 5$/m);
    assert.doesNotMatch(unit, /^Environment=/m);
    assert.match(unit, /^WantedBy=default.target$/m);
    // The ExecStart command is this install's CLI: run it as systemd would (split on spaces, no shell), asking for help.
    const [cmd, ...args] = exec.split(" ");
    const help = spawnSync(cmd ?? "", [...args.slice(0, -1), "--help"], { env: e.env, encoding: "utf8" });
    assert.equal(help.status, 0, help.stderr);

    const status = cliJson(
      e,
      ["service", "status"],
      z.object({ installed: z.boolean(), active: z.string(), problem: z.string().optional() }),
    );
    assert.equal(status.installed, true);
    // No systemd user manager here: the state is "unknown" and systemd's words go to `problem`, never into `active`.
    assert.match(
      status.active,
      /^(active|reloading|inactive|failed|activating|deactivating|maintenance|refreshing|unknown)$/,
    );
    if (status.active === "unknown") assert.ok(status.problem, "says why the state is unknown");
    const removed = cliJson(e, ["service", "uninstall"], z.object({ removed: z.boolean() }));
    assert.equal(removed.removed, true);
    assert.ok(!existsSync(installed.unit));
    assert.equal(cliJson(e, ["service", "status"], z.object({ installed: z.boolean() })).installed, false);
  });

  it("with the file keychain: warns (stderr and --json) that a service needs a passphrase file, and names one given at install in the unit", async () => {
    const e = await newEnv();
    e.env["XDG_CONFIG_HOME"] = path.join(e.home, "config");
    e.env = { ...e.env, [LEGACY_PASSPHRASE_FILE_ENV]: undefined, [PASSPHRASE_FILE_ENV]: undefined };
    await rememberKeychainChoice(e.paths.dataDir, "file");
    const InstalledSchema = z.object({
      unit: z.string(),
      keychain: z.literal("file"),
      passphraseFile: z.string().nullable(),
      warnings: z.array(z.string()),
    });

    const bare = cli(e, ["service", "install", "--no-start", "--json"]);
    assert.equal(bare.code, 0, bare.stderr);
    const warned = InstalledSchema.parse(JSON.parse(bare.stdout));
    assert.equal(warned.passphraseFile, null);
    assert.equal(warned.warnings.length, 1);
    assert.match(
      warned.warnings[0] ?? "",
      new RegExp(`encrypted file.*${PASSPHRASE_FILE_ENV}=/path/to/that/file piper-link service install`),
    );
    assert.match(bare.stderr, new RegExp(`^Warning: .*${PASSPHRASE_FILE_ENV}`));
    assert.doesNotMatch(readFileSync(warned.unit, "utf8"), /^Environment=/m);

    // A passphrase file given at install goes into the unit as its absolute path (a % doubled for systemd), never the passphrase.
    const file = path.join(e.home, "pass 100%");
    writeFileSync(file, "correct horse\n", { mode: 0o600 });
    e.env[PASSPHRASE_FILE_ENV] = file;
    const named = cli(e, ["service", "install", "--no-start", "--json"]);
    assert.equal(named.code, 0, named.stderr);
    assert.equal(named.stderr, "");
    const withFile = InstalledSchema.parse(JSON.parse(named.stdout));
    assert.deepEqual([withFile.passphraseFile, withFile.warnings], [file, []]);
    const unit = readFileSync(withFile.unit, "utf8");
    assert.match(unit, new RegExp(`^Environment="${PASSPHRASE_FILE_ENV}=${e.home}/pass 100%%"$`, "m"));
    assert.doesNotMatch(unit, /correct horse/);
  });

  it("keeps $ and % literal in ExecStart (systemd expands them even inside quotes) and refuses profile names that are not plain words", async () => {
    const e = await newEnv();
    e.env["XDG_CONFIG_HOME"] = path.join(e.home, "config");
    const installed = cliJson(
      e,
      ["service", "install", "--no-start", "--authority", "https://auth.example/%h$HOME"],
      z.object({ unit: z.string() }),
    );
    assert.match(
      readFileSync(installed.unit, "utf8"),
      /^ExecStart=.* --authority https:\/\/auth\.example\/%%h\$\$HOME$/m,
    );
    for (const bad of ["a/b", "$x", "%h"]) {
      const r = cli(e, ["--profile", bad, "service", "install", "--no-start"]);
      assert.equal(r.code, 2, `${bad}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /A profile name is 1 to 64 characters/);
    }
    assert.deepEqual(readdirSync(path.join(e.home, "config", "systemd", "user")), [path.basename(installed.unit)]);
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
    const file = autostartFile(
      readLinkEnv({ XDG_CONFIG_HOME: path.join(e.home, "config") }, "linux", e.home).configHome,
    );
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
