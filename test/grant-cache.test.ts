// The Link's cache of live grants: what it may answer from memory, and when it must not.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { UsageReport } from "../src/shared/authority.js";
import { createGrantCache } from "../src/main/core/authority/grant-cache.js";
import { silentLogger } from "../src/main/core/runtime/logger.js";

const proc = { pid: 10, executable: null, cwd: null, commandLine: null, startTime: 5 };
const entry = { value: "v", grantId: "gr_1", expiresAt: null };

describe("grant cache", () => {
  it("answers nothing until enabled, and forgets everything when disabled", async () => {
    const cache = createGrantCache({ log: silentLogger(), report: () => Promise.resolve() });
    cache.put("a", "KEY", proc, entry, cache.generation);
    assert.equal(cache.get("a", "KEY", proc, 0), null);
    cache.setEnabled(true);
    cache.put("a", "KEY", proc, entry, cache.generation);
    assert.deepEqual(cache.get("a", "key", proc, 0), entry, "variables are normalized");
    assert.equal(cache.get("b", "KEY", proc, 0), null, "another agent");
    assert.equal(cache.get("a", "KEY", { ...proc, startTime: 6 }, 0), null, "same pid, another process");
    cache.setEnabled(false);
    cache.setEnabled(true);
    assert.equal(cache.get("a", "KEY", proc, 0), null);
    await cache.stop();
  });

  it("does not store an answer fetched before a clear (a revocation racing the fetch)", async () => {
    const cache = createGrantCache({ log: silentLogger(), report: () => Promise.resolve() });
    cache.setEnabled(true);
    const seen = cache.generation;
    cache.clear("grant.changed");
    cache.put("a", "KEY", proc, entry, seen);
    assert.equal(cache.get("a", "KEY", proc, 0), null);
    await cache.stop();
  });

  it("respects grant expiry", async () => {
    const cache = createGrantCache({ log: silentLogger(), report: () => Promise.resolve() });
    cache.setEnabled(true);
    cache.put("a", "KEY", null, { ...entry, expiresAt: 1000 }, cache.generation);
    assert.ok(cache.get("a", "KEY", null, 999));
    assert.equal(cache.get("a", "KEY", null, 1000), null);
    await cache.stop();
  });

  it("reports every use for the audit log and keeps uses whose report failed", async () => {
    const reports: UsageReport[] = [];
    let fail = true;
    const cache = createGrantCache({
      log: silentLogger(),
      flushMs: 60_000,
      report: (r) => {
        if (fail) return Promise.reject(new Error("authority down"));
        reports.push(r);
        return Promise.resolve();
      },
    });
    cache.recordUse({ grantId: "gr_1", at: 1, agentClientId: "a", pid: 10 });
    cache.recordUse({ grantId: "gr_1", at: 2, agentClientId: "a", pid: null });
    await cache.flush();
    assert.equal(reports.length, 0);
    fail = false;
    await cache.stop();
    assert.deepEqual(
      reports.flatMap((r) => r.uses.map((u) => u.at)),
      [1, 2],
    );
  });
});
