// Runs against the real gnome-keyring that scripts/run-tests.mjs starts in a private D-Bus session.
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { LinkError } from "../src/shared/errors.js";
import { createKeychainStore, keychainService } from "../src/main/core/runtime/keychain.js";
import { testLinkEnv, uniqueProfile, waitFor } from "./helpers.js";

describe("keychain store (real Secret Service)", () => {
  it("returns null for a missing item, stores, reads and deletes", async () => {
    const keychain = createKeychainStore({ env: testLinkEnv(), profile: uniqueProfile() });
    assert.equal(await keychain.get("instance-id"), null);
    await keychain.set("instance-id", "inst_one");
    assert.equal(await keychain.get("instance-id"), "inst_one");
    await keychain.set("instance-id", "inst_two");
    assert.equal(await keychain.get("instance-id"), "inst_two");
    assert.equal(await keychain.delete("instance-id"), true);
    assert.equal(await keychain.delete("instance-id"), false);
    assert.equal(await keychain.get("instance-id"), null);
  });

  it("an idle keychain helper process ends and the next call starts another: values survive, nothing fails", async () => {
    const keychain = createKeychainStore({ env: testLinkEnv(), profile: uniqueProfile(), helperIdleMs: 20 });
    // The processes this test's main thread started (Linux: /proc/<pid>/task/<tid>/children).
    const children = async (): Promise<string[]> =>
      (await fs.readFile(`/proc/self/task/${process.pid}/children`, "utf8")).split(" ").filter(Boolean);
    const before = await children();
    await keychain.set("refresh-token", "rt_idle_1");
    const helpers = (await children()).filter((pid) => !before.includes(pid));
    assert.equal(helpers.length, 1, "one helper process answered");
    // Waits for the helpers' exit, not for a period: the test fails when a helper never ends.
    const ended = (pids: string[], what: string): Promise<void> =>
      waitFor(async () => (await children()).every((pid) => !pids.includes(pid)), what);
    await ended(helpers, "the idle helper to end");
    const seen = await children();
    assert.equal(await keychain.get("refresh-token"), "rt_idle_1", "a new helper answers");
    const second = (await children()).filter((pid) => !seen.includes(pid) && !before.includes(pid));
    await ended(second, "the second idle helper to end");
    await keychain.delete("refresh-token");
    assert.equal(await keychain.get("refresh-token"), null);
  });

  it("keeps profiles apart and items apart", async () => {
    const a = createKeychainStore({ env: testLinkEnv(), profile: uniqueProfile() });
    const b = createKeychainStore({ env: testLinkEnv(), profile: uniqueProfile() });
    await a.set("instance-id", "inst_a");
    await a.set("refresh-token", "rt_a");
    assert.equal(await b.get("instance-id"), null);
    assert.equal(await a.get("refresh-token"), "rt_a");
    await a.delete("instance-id");
    await a.delete("refresh-token");
  });

  it("uses service piper-link for the default profile and a suffix for others", () => {
    assert.equal(keychainService("default"), "piper-link");
    assert.equal(keychainService("work"), "piper-link.work");
  });

  it("is visible to other Secret Service clients under service piper-link.<profile>", async () => {
    const profile = uniqueProfile();
    await createKeychainStore({ env: testLinkEnv(), profile }).set("instance-id", "inst_visible");
    const r = spawnSync("secret-tool", ["lookup", "service", `piper-link.${profile}`, "username", "instance-id"], {
      encoding: "utf8",
    });
    assert.equal(r.stdout.trim(), "inst_visible", r.stderr);
    await createKeychainStore({ env: testLinkEnv(), profile }).delete("instance-id");
  });

  it("fails with keychain_unavailable and advice when there is no Secret Service, never falling back", () => {
    // A child process with an unreachable session bus: the store must refuse, not use another store.
    const script = `
      import { readLinkEnv } from "./src/main/core/runtime/env.ts";
      import { createKeychainStore } from "./src/main/core/runtime/keychain.ts";
      try { await createKeychainStore({ env: readLinkEnv(process.env), profile: "nobus" }).get("instance-id"); console.log(JSON.stringify({ ok: true })); }
      catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      encoding: "utf8",
      env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: "unix:path=/nonexistent/bus" },
    });
    const out = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as {
      name?: string;
      code?: string;
      message?: string;
    };
    assert.equal(out.name, "LinkError", r.stdout + r.stderr);
    assert.equal(out.code, "keychain_unavailable");
    assert.match(out.message ?? "", /Secret Service keyring/);
    assert.ok(new LinkError("keychain_unavailable", "x").retryable);
  });
});
