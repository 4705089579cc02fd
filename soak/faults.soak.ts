// Faults: the embedded authority killed (kill -9) during traffic; the keychain locked when the Link
// starts; the disk under the authority's database (the audit log) full. Each must end in a clear,
// stable error and a recovery without restarting the Link, and nothing may be lost or corrupted.
// (Kill -9 of the Link itself during a pending approval is covered by test/approval-flow.test.ts,
// which runs in `npm test`.)
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import { z } from "zod";
import { AuditPageSchema } from "../src/shared/authority.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import { cli, cliJson, newEnv, stopAll } from "../test/cli-helpers.js";
import { connectAgent, waitFor } from "../test/helpers.js";
import { authorityPids, grant, report, runWorker, startSignedInLink, VALUE, VARIABLE } from "./helpers.js";

after(stopAll);

function getStatus(port: number, pathName: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: pathName, agent: false }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on("error", reject);
  });
}

describe("faults", () => {
  it(
    "authority killed during traffic: agents get retryable errors, then recover without a Link restart",
    { timeout: 180_000 },
    async () => {
      const link = await startSignedInLink();
      await grant(link, "soak_fault");
      const [authorityPid] = authorityPids(link.status.pid);
      assert.ok(authorityPid, "the embedded authority runs as a child of the Link");
      const traffic = runWorker(link.status.url, {
        clientId: "soak_fault",
        connections: 20,
        durationMs: 20_000,
        intervalMs: 100,
      });
      await new Promise((r) => setTimeout(r, 5000));
      process.kill(authorityPid, "SIGKILL");
      const killedAt = Date.now();
      await waitFor(
        () => authorityPids(link.status.pid).some((p) => p !== authorityPid),
        "the Link to restart its authority",
        30_000,
      );
      await waitFor(
        () => cliJson(link.e, ["status"], LinkStatusSchema).authority?.connected === true,
        "the Link to reconnect",
        30_000,
      );
      const recoveredMs = Date.now() - killedAt;
      const during = await traffic;
      // After recovery the same agents are served again, from the same Link process.
      const afterwards = await runWorker(link.status.url, {
        clientId: "soak_fault",
        connections: 20,
        durationMs: 3000,
        intervalMs: 100,
      });
      report("soak: authority killed during traffic", {
        "answers during the run": during.ok,
        "errors during the run": JSON.stringify(during.errors),
        "of which retryable": during.retryable,
        "recovered after": `${recoveredMs} ms`,
        "answers after recovery": afterwards.ok,
        "errors after recovery": JSON.stringify(afterwards.errors),
      });
      const errorCount = Object.values(during.errors).reduce((a, b) => a + b, 0);
      assert.equal(during.retryable, errorCount, "every error during the outage was retryable");
      assert.deepEqual(
        Object.keys(during.errors).filter((k) => k !== "authority_unavailable"),
        [],
      );
      assert.deepEqual(afterwards.errors, {});
      assert.ok(afterwards.ok > 0);
      assert.equal(cliJson(link.e, ["status"], LinkStatusSchema).pid, link.status.pid, "the Link never restarted");
    },
  );

  it(
    "keychain locked at start: a clear error, then the Link recovers by itself once it is unlocked",
    { timeout: 120_000 },
    async (t) => {
      if (spawnSync("sh", ["-c", "command -v dbus-daemon && command -v busctl"]).status !== 0)
        return t.skip("needs dbus-daemon and busctl");
      const e = await newEnv();
      // A private session bus and keyring for this test alone: locking it must not disturb other tests.
      const bus = spawnSync("dbus-daemon", ["--session", "--fork", "--print-address=1", "--print-pid=1"], {
        encoding: "utf8",
        env: e.env,
      });
      const [address, busPid] = bus.stdout.trim().split("\n");
      assert.ok(address && busPid, bus.stderr);
      e.env["DBUS_SESSION_BUS_ADDRESS"] = address;
      fs.mkdirSync(e.env["XDG_RUNTIME_DIR"] ?? "", { recursive: true, mode: 0o700 });
      const unlock = (): void => {
        const r = spawnSync("gnome-keyring-daemon", ["--unlock", "--replace", "--components=secrets"], {
          input: "soak-password",
          env: e.env,
          encoding: "utf8",
        });
        assert.equal(r.status, 0, r.stderr);
      };
      try {
        unlock();
        assert.equal(cli(e, ["dev", "set-instance", "inst_soak_keychain_01"]).code, 0);
        const lock = spawnSync(
          "busctl",
          [
            "--user",
            "call",
            "org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service",
            "Lock",
            "ao",
            "1",
            "/org/freedesktop/secrets/collection/login",
          ],
          { env: e.env, encoding: "utf8" },
        );
        assert.equal(lock.status, 0, lock.stderr);

        // With its embedded authority the Link cannot start without the keychain: it says why (exit 5).
        const refused = cli(e, ["start", "--port", "0", "--json"]);
        assert.equal(refused.code, 5, refused.stdout + refused.stderr);
        assert.equal(z.object({ error: z.string() }).parse(JSON.parse(refused.stdout)).error, "keychain_locked");

        // Without an authority it serves, reports the locked keychain, and recovers once unlocked.
        const started = cliJson(e, ["start", "--port", "0", "--authority", "none"], LinkStatusSchema);
        assert.equal(started.keychain.ok, false);
        assert.equal(started.keychain.code, "keychain_locked");
        const context = await getStatus(started.port, "/piper-link-context");
        assert.equal(context.status, 503);
        assert.equal((JSON.parse(context.body) as { error: string }).error, "keychain_locked");
        unlock();
        await waitFor(
          () => cliJson(e, ["status"], LinkStatusSchema).keychain.ok,
          "the Link to read the keychain again",
          30_000,
        );
        const recovered = cliJson(e, ["status"], LinkStatusSchema);
        assert.equal(recovered.state, "ready");
        assert.equal(recovered.pid, started.pid);
        report("soak: keychain locked at start", {
          "start with embedded authority": `exit ${refused.code} keychain_locked`,
          "start without authority": `served, /piper-link-context ${context.status} keychain_locked`,
          "after unlock": `ready, same pid ${recovered.pid}`,
        });
        cli(e, ["stop"]);
      } finally {
        spawnSync("kill", [busPid]);
      }
    },
  );

  it(
    "disk full under the audit log: a clear error to the agent, nothing corrupted, recovery when space returns",
    { timeout: 120_000 },
    async (t) => {
      const e = await newEnv();
      const data = path.join(e.home, "data");
      fs.mkdirSync(data, { recursive: true });
      const mount = spawnSync("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", data], { encoding: "utf8" });
      if (mount.status !== 0) return t.skip(`cannot mount a small tmpfs here (${mount.stderr.trim()}); needs root`);
      try {
        const status = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
        cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
        assert.equal(cli(e, ["secrets", "set", VARIABLE], `${VALUE}\n`).code, 0);
        const before = cliJson(e, ["activity", "--limit", "500"], AuditPageSchema).events.length;

        // Fill the disk.
        const filler = path.join(data, "filler");
        const fd = fs.openSync(filler, "w");
        const chunk = Buffer.alloc(64 * 1024, 1);
        try {
          for (;;) fs.writeSync(fd, chunk);
        } catch (err) {
          assert.equal((err as NodeJS.ErrnoException).code, "ENOSPC");
        } finally {
          fs.closeSync(fd);
        }

        // An agent's request needs rows (request + audit): it gets a clear error, promptly.
        const agent = await connectAgent(status.url);
        assert.equal((await agent.hello(1, "soak_disk")).type, "welcome");
        agent.send({ type: "resolve", id: 2, variable: "DISK_FULL_PROBE", wait: false });
        const answer = await agent.next((m) => "id" in m && m.id === 2, 15_000);
        assert.equal(answer.type, "error");
        const failedWith = answer.code;
        assert.ok(failedWith.length > 0);
        assert.equal((await getStatus(status.port, "/healthz")).status, 200, "the Link keeps serving");

        // Space returns: the database is intact, nothing recorded earlier is lost, and requests work again.
        fs.rmSync(filler);
        agent.send({ type: "resolve", id: 3, variable: "DISK_FULL_PROBE", wait: false });
        const retry = await agent.next((m) => "id" in m && m.id === 3, 15_000);
        assert.equal(retry.type, "pending", JSON.stringify(retry));
        agent.close();
        const after = cliJson(e, ["activity", "--limit", "500"], AuditPageSchema).events.length;
        assert.ok(after > before, "earlier audit events are all still there, plus the new request");
        cli(e, ["stop"]);
        const db = new Database(path.join(data, `piper-link-${e.profile}`, "authority", "authority.sqlite"), {
          readonly: true,
        });
        const integrity = db.pragma("integrity_check", { simple: true });
        db.close();
        assert.equal(integrity, "ok");
        report("soak: disk full under the audit log", {
          "agent's answer while full": `error ${failedWith}`,
          "Link /healthz while full": 200,
          "after space returns": `request pending again; audit events ${before} -> ${after}`,
          "SQLite integrity_check": integrity,
        });
      } finally {
        cli(e, ["stop"]);
        spawnSync("umount", ["-l", data]);
      }
    },
  );
});
