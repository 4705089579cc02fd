/**
 * Deliveries the Link answered from its cache of live grants. Under load that is thousands a
 * second, so they are recorded per grant and process: one audit event saying how many, and the
 * grant's last use. The report's grants are read in one query with their secret names (a join).
 *
 * Calls the Link made for agents (uses with `call`) are recorded one `call.made` event each, with
 * the call's audit detail (audit.ts `callDetail`): DESIGN.md section 8 audits every call. A call
 * answered from the Link's cache also counts as the grant's use; one resolved at the authority was
 * already counted by that resolve.
 */
import type { AuditProgram, UsageReport } from "../../shared/authority.js";
import { callDetail, type AuditLog } from "./audit.js";
import type { ServiceDeps } from "./deps.js";

/** The usage part of the service. */
export function createUsage({ db }: ServiceDeps, audit: AuditLog) {
  return {
    /**
     * Records a usage report for `userId` (the caller's account); uses naming another account's
     * grant, or a grant made on a revoked (signed-out) instance, are ignored. Returns how many
     * uses were recorded.
     */
    record: async (userId: string, report: UsageReport): Promise<number> => {
      const groups = new Map<
        string,
        {
          grantId: string;
          agentClientId: string;
          pid: number | null;
          program: AuditProgram | null;
          count: number;
          first: number;
          last: number;
        }
      >();
      const calls = report.uses.flatMap((use) => (use.call === undefined ? [] : [{ ...use, call: use.call }]));
      for (const use of report.uses) {
        if (use.call !== undefined) continue;
        const key = `${use.grantId}\u0000${use.agentClientId}\u0000${use.pid ?? "-"}`;
        const g = groups.get(key);
        if (g === undefined)
          groups.set(key, {
            grantId: use.grantId,
            agentClientId: use.agentClientId,
            pid: use.pid,
            program: use.program ?? null,
            count: 1,
            first: use.at,
            last: use.at,
          });
        else {
          g.count += 1;
          g.first = Math.min(g.first, use.at);
          g.last = Math.max(g.last, use.at);
        }
      }
      const ids = [...new Set([...[...groups.values()].map((g) => g.grantId), ...calls.map((c) => c.grantId)])];
      if (ids.length === 0) return 0;
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
        await db
          .updateTable("grants")
          .set({ last_used_at: use.last })
          .where("id", "=", grant.id)
          .where((eb) => eb.or([eb("last_used_at", "is", null), eb("last_used_at", "<", use.last)]))
          .execute();
        const where = use.pid === null ? "link-cache" : `link-cache pid ${use.pid}`;
        const detail =
          use.count === 1
            ? where
            : `${where}, ${use.count} deliveries ${new Date(use.first).toISOString()} – ${new Date(use.last).toISOString()}`;
        await audit.record({
          userId,
          actor: `agent:${use.agentClientId}`,
          action: "secret.delivered",
          outcome: "ok",
          agentClientId: use.agentClientId,
          variable: grant.variable,
          grantId: grant.id,
          secretName: grant.secret_name,
          detail,
          program: use.program,
        });
        recorded += use.count;
      }
      for (const use of calls) {
        const grant = known.get(use.grantId);
        if (grant === undefined) continue;
        const { fromCache, ...call } = use.call;
        if (fromCache)
          await db
            .updateTable("grants")
            .set({ last_used_at: use.at })
            .where("id", "=", grant.id)
            .where((eb) => eb.or([eb("last_used_at", "is", null), eb("last_used_at", "<", use.at)]))
            .execute();
        await audit.record({
          userId,
          actor: `agent:${use.agentClientId}`,
          action: "call.made",
          outcome: call.error ?? "ok",
          agentClientId: use.agentClientId,
          variable: grant.variable,
          grantId: grant.id,
          secretName: grant.secret_name,
          detail: callDetail(call),
          program: use.program ?? null,
        });
        recorded += 1;
      }
      return recorded;
    },
  };
}
