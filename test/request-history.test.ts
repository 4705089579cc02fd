// History keeps what it said (issue 15 item 8), on both storage engines: a request keeps the agent
// name it was made under (migration 005_request_history), and "grant ended" / "request expired"
// audit events name their agent, so Activity filtered by agent shows revocations and expiries.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { newDataKey, parseDataKeys } from "../src/server/crypto.js";
import { openDatabase } from "../src/server/db.js";
import { createLocalBus } from "../src/server/events.js";
import { createService } from "../src/server/service/index.js";
import { ENGINES } from "./db-helpers.js";
import { pendingRequestId } from "./helpers.js";

for (const engine of ENGINES) {
  describe(`request history on ${engine.name}`, { skip: engine.skip }, () => {
    it("an old request keeps the agent's name of its time; grant.ended and request.expired carry the agent", async () => {
      const db = await engine.make();
      const opened = await openDatabase(db.location);
      try {
        const clock = { t: 1_800_000_000_000 };
        const service = createService({
          db: opened.db,
          keys: parseDataKeys(`k1:${newDataKey()}`),
          bus: createLocalBus(),
          now: () => clock.t,
          requestTtlMs: 60_000,
        });
        const { userId } = await service.createUser("Test");
        const instanceId = await service.registerInstance(userId, "test machine");
        await service.setSecret(userId, "TOKEN", "v");

        const first = await service.resolve(userId, {
          instanceId,
          agentClientId: "agent_h",
          agentName: "Old Name",
          variable: "TOKEN",
        });
        const firstId = pendingRequestId(first);
        clock.t += 1000;
        // The same agent, renamed, asks for something else later.
        await service.resolve(userId, {
          instanceId,
          agentClientId: "agent_h",
          agentName: "New Name",
          variable: "OTHER",
        });
        const all = await service.listRequests(userId, "all");
        const names = new Map(all.map((r) => [r.variable, r.agentName]));
        assert.equal(names.get("token"), "Old Name", "the first request still says who asked then");
        assert.equal(names.get("other"), "New Name");

        // Approve for 1 hour and revoke: the grant.ended event names the agent.
        const grant = await service.approve(userId, firstId, { scope: { kind: "duration", durationMs: 3_600_000 } });
        await service.revokeGrant(userId, grant.id);
        const ended = (await service.listAudit(userId, { limit: 50, agent: "agent_h" })).events.find(
          (e) => e.action === "grant.ended",
        );
        assert.ok(ended, "filtering by agent finds the revocation");
        assert.equal(ended.agentClientId, "agent_h");
        assert.equal(ended.outcome, "revoked");

        // The other request expires: that event names the agent too.
        clock.t += 120_000;
        assert.equal(await service.expireRequests(), 1);
        const expired = (await service.listAudit(userId, { limit: 50, agent: "agent_h" })).events.find(
          (e) => e.action === "request.expired",
        );
        assert.equal(expired?.agentClientId, "agent_h");
      } finally {
        await opened.close();
        await db.drop();
      }
    });
  });
}
