// The keychain's bounds and error codes (issue 16 items 3-4), against real D-Bus: a private bus whose
// Secret Service is activated but never answers (its service file starts a process that never
// registers the name, so every call waits), and no session bus at all for `piper-link start --json`.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { HttpErrorBodySchema } from "../src/shared/errors.js";
import { cli, newEnv, stopAll } from "./cli-helpers.js";
import { tempDir, uniqueProfile } from "./helpers.js";

after(stopAll);

const HAS_DBUS = spawnSync("sh", ["-c", "command -v dbus-daemon"]).status === 0;

describe("a Secret Service that never answers", { skip: HAS_DBUS ? false : "dbus-daemon is not installed" }, () => {
  let dir: string;
  let bus: ReturnType<typeof spawn>;
  let address = "";
  before(async () => {
    dir = await tempDir("piper-hanging-bus-");
    await fs.mkdir(path.join(dir, "services"));
    // Activation starts a process that never takes the name: the bus holds each call until its
    // (raised) activation timeout, as a keyring waiting on an unanswered unlock prompt does.
    await fs.writeFile(path.join(dir, "services", "org.freedesktop.secrets.service"), "[D-BUS Service]\nName=org.freedesktop.secrets\nExec=/bin/sleep 60\n");
    await fs.writeFile(
      path.join(dir, "bus.conf"),
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:tmpdir=${dir}</listen><servicedir>${path.join(dir, "services")}</servicedir>
<policy context="default"><allow send_destination="*"/><allow own="*"/></policy>
<limit name="service_start_timeout">600000</limit></busconfig>`,
    );
    bus = spawn("dbus-daemon", [`--config-file=${path.join(dir, "bus.conf")}`, "--nofork", "--print-address=1"], { stdio: ["ignore", "pipe", "ignore"] });
    const stdout = bus.stdout;
    assert.ok(stdout);
    const [line] = (await once(stdout.setEncoding("utf8"), "data")) as [string];
    address = line.trim();
  });
  after(async () => {
    bus.kill();
    await fs.rm(dir, { recursive: true, force: true });
  });

  // Keychain calls run in a helper process that is killed when the bound fires (issue 16 item 3).
  it("logout's sequence of keychain calls waits at most about one bound in all, fails as keychain_locked, and the process then ends", () => {
    const timeoutMs = 600;
    const script = `
      import { createKeychainStore } from "./src/main/core/runtime/keychain.ts";
      const k = createKeychainStore({ profile: ${JSON.stringify(uniqueProfile())}, timeoutMs: ${timeoutMs} });
      const started = Date.now();
      const codes = [];
      for (const call of [() => k.get("instance-id"), () => k.delete("instance-id"), () => k.delete("refresh-token")]) {
        try { await call(); codes.push("ok"); } catch (e) { codes.push(e.code); }
      }
      console.log(JSON.stringify({ codes, ms: Date.now() - started }));`;
    // No process.exit: the process must end by itself once the calls failed. A keychain call stuck in
    // D-Bus ends only at D-Bus's own 25 s reply timeout, so a process that waited for it shows here.
    const spawned = Date.now();
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 60_000,
      env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: address },
    });
    const out = z.object({ codes: z.array(z.string()), ms: z.number() }).parse(JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}"));
    assert.deepEqual(out.codes, ["keychain_locked", "keychain_locked", "keychain_locked"], r.stderr);
    assert.ok(out.ms < timeoutMs + 400, `three calls took ${out.ms} ms; the bound is ${timeoutMs} ms`);
    const lived = Date.now() - spawned;
    assert.ok(lived < 12_000, `the process lived ${lived} ms: it waited for the stuck keychain call instead of ending`);
  });
});

describe("error codes from errors, not words", () => {
  it("`start --json` without a session bus reports keychain_unavailable (exit 5), the daemon's own error", async () => {
    const e = await newEnv();
    e.env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=/nonexistent/bus";
    const r = cli(e, ["start", "--port", "0", "--json"]);
    assert.equal(r.code, 5, r.stdout + r.stderr);
    const body = HttpErrorBodySchema.parse(JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}"));
    assert.equal(body.error, "keychain_unavailable");
    // The advice says "unlocked", which once made the code keychain_locked.
    assert.match(body.message, /Secret Service keyring/);
  });
});
