/**
 * Deliveries the Link answered from its cache of live grants. Under load that is thousands a
 * second, so they are recorded per grant and process: one audit event saying how many, and the
 * grant's last use. The report's grants are read in one query with their secret names (a join).
 */
import type { UsageReport } from "../../shared/authority.js";
import type { AuditLog } from "./audit.js";
import type { ServiceDeps } from "./deps.js";

export type Usage = ReturnType<typeof createUsage>;

/** The usage part of the service. */
export function createUsage({ db }: ServiceDeps, audit: AuditLog) {
  return {
    /**
     * Records a usage report for `userId` (the caller's account); uses naming another account's
     * grant, or a grant made on a revoked (signed-out) instance, are ignored. Returns how many
     * uses were recorded.
     */
    record: async (userId: string, report: UsageReport): Promise<number> => {
      const groups = new Map<string, { grantId: string; agentClientId: string; pid: number | null; count: number; first: number; last: number }>();
      for (const use of report.uses) {
        const key = `${use.grantId}\u0000${use.agentClientId}\u0000${use.pid ?? "-"}`;
        const g = groups.get(key);
        if (g === undefined) groups.set(key, { grantId: use.grantId, agentClientId: use.agentClientId, pid: use.pid, count: 1, first: use.at, last: use.at });
        else {
          g.count += 1;
          g.first = Math.min(g.first, use.at);
          g.last = Math.max(g.last, use.at);
        }
      }
      const ids = [...new Set([...groups.values()].map((g) => g.grantId))];
      const rows = await db
        .selectFrom("grants")
        .leftJoin("secrets", "secrets.id", "grants.secret_id")
        .leftJoin("instances", "instances.id", "grants.instance_id")
        .select(["grants.id", "grants.variable", "secrets.name as secret_name", "instances.revoked_at"])
        .where("grants.id", "in", ids)
        .where("grants.user_id", "=", userId)
        .execute();
      const known = new Map(rows.filter((r) => r.revoked_at === null).map((r) => [r.id, r]));
      let recorded = 0;
      for (const use of groups.values()) {
        const grant = known.get(use.grantId);
        if (grant === undefined) continue;
        await db.updateTable("grants").set({ last_used_at: use.last }).where("id", "=", grant.id).where((eb) => eb.or([eb("last_used_at", "is", null), eb("last_used_at", "<", use.last)])).execute();
        const where = use.pid === null ? "link-cache" : `link-cache pid ${use.pid}`;
        const detail = use.count === 1 ? where : `${where}, ${use.count} deliveries ${new Date(use.first).toISOString()} – ${new Date(use.last).toISOString()}`;
        await audit.record({ userId, actor: `agent:${use.agentClientId}`, action: "secret.delivered", outcome: "ok", agentClientId: use.agentClientId, variable: grant.variable, grantId: grant.id, secretName: grant.secret_name, detail });
        recorded += use.count;
      }
      return recorded;
    },
  };
}
