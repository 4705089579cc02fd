/**
 * Grants: what lets an agent read one secret under a variable name, with a scope (once, until a
 * time, until revoked, or the life of one process). Finding the live grant for a call, delivering
 * through it (a once-grant is claimed atomically, so only one caller across all authority
 * processes gets it), ending grants, and the grant list, read with one joined query.
 */
import type { GrantView } from "../../shared/authority.js";
import type { PeerProcess } from "../../shared/process.js";
import type { AuditLog } from "./audit.js";
import type { AgentRow, GrantRow, ServiceDeps } from "./deps.js";
import { ServiceError } from "./errors.js";
import { readSecret } from "./secrets.js";

export type Grants = ReturnType<typeof createGrants>;

/** True when a process-scoped grant is asked for by that very process (pid and start time) on its instance. */
function processMatches(grant: GrantRow, process: PeerProcess | null | undefined, instanceId: string): boolean {
  if (grant.scope !== "process") return true;
  return process !== null && process !== undefined && grant.instance_id === instanceId && grant.process_pid === process.pid && grant.process_start_time === process.startTime;
}

/** The grants part of the service. */
export function createGrants(deps: ServiceDeps, audit: AuditLog) {
  const { db, bus, now } = deps;

  /**
   * Grants with their agent and secret name in one query (a join, not a query per row). The
   * secret is a left join: a deleted secret's grants stay listed as "(deleted)".
   */
  function viewQuery() {
    return db
      .selectFrom("grants")
      .innerJoin("agents", "agents.id", "grants.agent_id")
      .leftJoin("secrets", "secrets.id", "grants.secret_id")
      .selectAll("grants")
      .select(["agents.client_id as agent_client_id", "agents.display_name as agent_name", "secrets.name as secret_name"]);
  }
  type ViewRow = Awaited<ReturnType<ReturnType<typeof viewQuery>["executeTakeFirstOrThrow"]>>;

  function toView(g: ViewRow): GrantView {
    return {
      id: g.id,
      agentClientId: g.agent_client_id,
      agentName: g.agent_name,
      variable: g.variable,
      secretName: g.secret_name ?? "(deleted)",
      scope: g.scope,
      expiresAt: g.expires_at,
      process: g.process_pid === null ? null : { pid: g.process_pid, startTime: g.process_start_time },
      instanceId: g.instance_id,
      requestId: g.request_id,
      createdAt: g.created_at,
      lastUsedAt: g.last_used_at,
      endedAt: g.ended_at,
      endReason: g.end_reason,
    };
  }

  /** Ends a live grant once (the first caller wins), audits it and tells the Link. False when it had already ended. */
  async function endGrant(grant: GrantRow, reason: string, actor: string): Promise<boolean> {
    const r = await db.updateTable("grants").set({ ended_at: now(), end_reason: reason }).where("id", "=", grant.id).where("ended_at", "is", null).executeTakeFirst();
    const ended = Number(r.numUpdatedRows) === 1;
    if (ended) {
      // The event names its agent, so filtering Activity by agent shows revocations and expiries too.
      const agent = await db.selectFrom("agents").select("client_id").where("id", "=", grant.agent_id).executeTakeFirst();
      await audit.record({ userId: grant.user_id, actor, action: "grant.ended", outcome: reason, agentClientId: agent?.client_id ?? null, variable: grant.variable, grantId: grant.id });
      await bus.publish({ type: "grant.changed", userId: grant.user_id, id: grant.id, status: "ended" });
    }
    return ended;
  }

  async function endAll(rows: GrantRow[], reason: string, actor: string): Promise<number> {
    let n = 0;
    for (const g of rows) if (await endGrant(g, reason, actor)) n += 1;
    return n;
  }

  return {
    endGrant,

    /** One grant as the Link sees it. 404 `grant_not_found` when it is not this user's. */
    view: async (userId: string, grantId: string): Promise<GrantView> => {
      const row = await viewQuery().where("grants.id", "=", grantId).where("grants.user_id", "=", userId).executeTakeFirst();
      if (row === undefined) throw new ServiceError(404, "grant_not_found", `No grant ${grantId}.`);
      return toView(row);
    },

    /** The user's grants, newest first (live ones only unless `includeEnded`), at most 1,000. */
    list: async (userId: string, includeEnded: boolean): Promise<GrantView[]> => {
      let q = viewQuery().where("grants.user_id", "=", userId);
      if (!includeEnded) q = q.where("grants.ended_at", "is", null);
      const rows = await q.orderBy("grants.created_at", "desc").limit(1000).execute();
      return rows.map(toView);
    },

    /**
     * The grant that lets this agent read `variable` now, ending expired ones on the way. Only
     * grants of `ownerId` (the instance's account) count: a grant never serves under another
     * account, even if rows were ever mixed up.
     */
    findLive: async (ownerId: string, agent: AgentRow, variable: string, instanceId: string, process: PeerProcess | null | undefined): Promise<GrantRow | null> => {
      if (agent.user_id !== ownerId) return null;
      const grants = await db.selectFrom("grants").selectAll().where("agent_id", "=", agent.id).where("user_id", "=", ownerId).where("variable", "=", variable).where("ended_at", "is", null).execute();
      const t = now();
      for (const g of grants) {
        if (g.scope === "until" && g.expires_at !== null && g.expires_at <= t) {
          await endGrant(g, "expired", "system");
          continue;
        }
        if (processMatches(g, process, instanceId)) return g;
      }
      return null;
    },

    /** Reads the grant's secret, ends a `once` grant atomically, records the use. Null when it cannot serve any more. */
    deliver: async (grant: GrantRow, agent: AgentRow, via: string): Promise<{ value: string; expiresAt: number | null } | null> => {
      const secret = await readSecret(deps, grant.user_id, grant.secret_id);
      if (secret === null) {
        await endGrant(grant, "secret_deleted", "system");
        return null;
      }
      if (grant.scope === "once") {
        // Only one caller may use a once-grant, even with several authority processes.
        const r = await db.updateTable("grants").set({ ended_at: now(), end_reason: "used", last_used_at: now() }).where("id", "=", grant.id).where("ended_at", "is", null).executeTakeFirst();
        if (Number(r.numUpdatedRows) !== 1) return null;
        await bus.publish({ type: "grant.changed", userId: grant.user_id, id: grant.id, status: "used" });
      } else {
        await db.updateTable("grants").set({ last_used_at: now() }).where("id", "=", grant.id).execute();
      }
      await audit.record({ userId: grant.user_id, actor: `agent:${agent.client_id}`, action: "secret.delivered", outcome: "ok", agentClientId: agent.client_id, variable: grant.variable, grantId: grant.id, secretName: secret.name, detail: via });
      return { value: secret.value, expiresAt: grant.scope === "until" ? grant.expires_at : null };
    },

    /** Ends one of the user's grants (if live) and returns it. 404 `grant_not_found`. */
    revoke: async (userId: string, grantId: string, reason: string): Promise<GrantView> => {
      const grant = await db.selectFrom("grants").selectAll().where("id", "=", grantId).where("user_id", "=", userId).executeTakeFirst();
      if (grant === undefined) throw new ServiceError(404, "grant_not_found", `No grant ${grantId}.`);
      if (grant.ended_at === null) await endGrant(grant, reason, reason === "revoked" ? "user" : "link");
      const row = await viewQuery().where("grants.id", "=", grantId).executeTakeFirstOrThrow();
      return toView(row);
    },

    /** Ends every live grant of a secret (it is being deleted); returns how many ended. */
    endGrantsOfSecret: async (secretId: string, reason: string, actor: string): Promise<number> => {
      return endAll(await db.selectFrom("grants").selectAll().where("secret_id", "=", secretId).where("ended_at", "is", null).execute(), reason, actor);
    },

    /** Ends every live grant made on an instance (it signed out); returns how many ended. */
    endGrantsOfInstance: async (instanceId: string, reason: string, actor: string): Promise<number> => {
      return endAll(await db.selectFrom("grants").selectAll().where("instance_id", "=", instanceId).where("ended_at", "is", null).execute(), reason, actor);
    },
  };
}
