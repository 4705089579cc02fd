// The audit log of calls the Link made for agents (issue 14 item 7), on both storage engines: a
// usage report's calls become one `call.made` event each with what a call is (never a value), and
// the log filters by secret, agent and called host (exact host: no prefix, no LIKE wildcard).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { UsageReport } from "../src/shared/authority.js";
import type { CallAudit } from "../src/shared/calls.js";
import { newDataKey, parseDataKeys } from "../src/server/crypto.js";
import { openDatabase } from "../src/server/db.js";
import { createLocalBus } from "../src/server/events.js";
import { createService } from "../src/server/service/index.js";
import { ENGINES } from "./db-helpers.js";
import { pendingRequestId } from "./helpers.js";

const VALUE = "sk-audit-value-123";

function callTo(
  host: string,
  extra: Partial<CallAudit & { fromCache: boolean }> = {},
): CallAudit & { fromCache: boolean } {
  return {
    secretNames: ["API_KEY"],
    method: "GET",
    host,
    path: "/v1/things",
    status: 200,
    bytes: 42,
    durationMs: 12.5,
    redacted: false,
    error: null,
    program: "/usr/bin/node /home/p/agent.js",
    fromCache: true,
    ...extra,
  };
}

for (const engine of ENGINES) {
  describe(`call audit on ${engine.name}`, { skip: engine.skip }, () => {
    it("records each call with its detail and filters by secret, agent and exact host", async () => {
      const db = await engine.make();
      const opened = await openDatabase(db.location);
      try {
        const service = createService({
          db: opened.db,
          keys: parseDataKeys(`k1:${newDataKey()}`),
          bus: createLocalBus(),
          now: () => 1_800_000_000_000,
          requestTtlMs: 60_000,
        });
        const { userId } = await service.createUser("Test");
        const instanceId = await service.registerInstance(userId, "test machine");
        const grantFor = async (agentClientId: string, variable: string, secret: string): Promise<string> => {
          await service.setSecret(userId, secret, VALUE);
          const r = await service.resolve(userId, { instanceId, agentClientId, variable });
          return (await service.approve(userId, pendingRequestId(r), { scope: { kind: "until_revoked" } })).id;
        };
        const g1 = await grantFor("agent_a", "API_KEY", "API_KEY");
        const g2 = await grantFor("agent_b", "OTHER_KEY", "OTHER_KEY");
        const at = 1_800_000_000_000;
        const uses: UsageReport["uses"] = [
          { grantId: g1, at, agentClientId: "agent_a", pid: 10, call: callTo("api.example.com", { redacted: true }) },
          { grantId: g1, at, agentClientId: "agent_a", pid: 10, call: callTo("api.example.com.evil.net") },
          // `_` is a LIKE wildcard: "a_b" must not match "axb".
          {
            grantId: g2,
            at,
            agentClientId: "agent_b",
            pid: 11,
            call: callTo("a_b.example.com:8443", { status: null, error: "upstream_unavailable", fromCache: false }),
          },
          { grantId: g2, at, agentClientId: "agent_b", pid: 11, call: callTo("axb.example.com:8443") },
          // A plain cached delivery stays one grouped `secret.delivered` event.
          { grantId: g1, at, agentClientId: "agent_a", pid: 10 },
        ];
        assert.equal(await service.recordUsage(userId, { uses }), 5);

        const calls = await service.listAudit(userId, { limit: 50, host: "API.example.com" });
        assert.equal(calls.events.length, 1, "exact host only, case-insensitive");
        const [event] = calls.events;
        assert.equal(event?.action, "call.made");
        assert.equal(event.secretName, "API_KEY");
        assert.equal(event.agentClientId, "agent_a");
        assert.deepEqual(event.call, {
          secretNames: ["API_KEY"],
          method: "GET",
          host: "api.example.com",
          path: "/v1/things",
          status: 200,
          bytes: 42,
          durationMs: 12.5,
          redacted: true,
          error: null,
          program: "/usr/bin/node /home/p/agent.js",
        });

        const wild = await service.listAudit(userId, { limit: 50, host: "a_b.example.com:8443" });
        assert.deepEqual(
          wild.events.map((e) => [e.call?.host, e.outcome]),
          [["a_b.example.com:8443", "upstream_unavailable"]],
        );

        const bySecret = await service.listAudit(userId, { limit: 50, secret: "OTHER_KEY" });
        assert.ok(bySecret.events.length >= 2);
        assert.ok(bySecret.events.every((e) => e.secretName === "OTHER_KEY"));
        const byAgentAndSecret = await service.listAudit(userId, { limit: 50, agent: "agent_a", secret: "API_KEY" });
        assert.deepEqual(
          byAgentAndSecret.events
            .filter((e) => e.action !== "request.created" && e.action !== "request.approved")
            .map((e) => e.action)
            .sort(),
          ["call.made", "call.made", "secret.delivered"],
        );
        assert.equal(
          (await service.listAudit(userId, { limit: 50, host: "example.com" })).events.length,
          0,
          "no substring match",
        );

        const all = await service.listAudit(userId, { limit: 500 });
        assert.equal(all.events.filter((e) => e.action === "call.made").length, 4);
        assert.ok(all.events.filter((e) => e.action !== "call.made").every((e) => e.call === null));
        assert.doesNotMatch(JSON.stringify(all), new RegExp(VALUE));
      } finally {
        await opened.close();
        await db.drop();
      }
    });
  });
}
