/**
 * Grants: what lets an agent read one secret under a variable name, with a scope (once, until a
 * time, until revoked, or the life of one process). Finding the live grant for a call, delivering
 * through it (a once-grant is claimed atomically, so only one caller across all authority
 * processes gets it), ending grants, and the grant list, read with one joined query.
 */
import { z } from "zod";
import type { AuditProgram, GrantBindingView, GrantView } from "../../shared/authority.js";
import {
  checkPolicy,
  destinationAllows,
  GrantModeSchema,
  GrantPolicySchema,
  SESSION_IDLE_MS,
  SESSION_MAX_MS,
  type GrantMode,
  type GrantPolicy,
  type GrantTerms,
} from "../../shared/grant-terms.js";
import { isShared, programFingerprint, programKey, sessionKey, type PeerProcess } from "../../shared/process.js";
import type { AuditLog } from "./audit.js";
import { parseStored, type AgentRow, type GrantRow, type ServiceDeps } from "./deps.js";
import { ServiceError } from "./errors.js";
import { readSecret } from "./secrets.js";

export type Grants = ReturnType<typeof createGrants>;

/** The approved program as stored for display (grants.program). */
const ProgramSchema = z.object({
  executable: z.string(),
  script: z.string().nullable(),
  cwd: z.string().nullable(),
  commandLine: z.array(z.string()).nullable().optional(),
  loads: z.array(z.string()).optional(),
  contentHash: z.string().nullable().optional(),
});

/** The program a grant is bound to, as the audit log names it (null for grants bound to a client ID only). */
function boundProgram(grant: GrantRow): AuditProgram | null {
  const program = parseStored(grant.program, ProgramSchema);
  return program === null
    ? null
    : { executable: program.executable, script: program.script, cwd: program.cwd, pid: grant.process_pid };
}

/** The grant's mode (read unless stored otherwise). */
export function grantMode(grant: GrantRow): GrantMode {
  return parseStored(grant.mode, GrantModeSchema) ?? { kind: "read" };
}

/** The grant's policy limits; a policy that was stored but cannot be read refuses every use (fail closed). */
export function grantPolicy(grant: GrantRow): GrantPolicy | null {
  if (grant.policy === null) return null;
  return parseStored(grant.policy, GrantPolicySchema) ?? { endsAt: 1 };
}

/** The terms the Link gets with a delivered value. */
export function grantTerms(grant: GrantRow): GrantTerms {
  const lifetime: GrantTerms["lifetime"] =
    grant.scope === "once"
      ? { kind: "once" }
      : grant.scope === "until" && grant.expires_at !== null
        ? { kind: "duration", durationMs: Math.max(1000, grant.expires_at - grant.created_at) }
        : { kind: "until_revoked" };
  return { binding: grant.binding, lifetime, mode: grantMode(grant), policy: grantPolicy(grant) };
}

/**
 * Does the program identity the Link read from the OS satisfy the grant's binding (issue 13 item 5)?
 * `client` grants (made before bindings, or chosen explicitly) match any program of the agent;
 * the others need the process (pid + start time), the program (executable + script + cwd), or the
 * program in the same terminal session (session id + leader's pid and start time).
 */
function bindingMatches(grant: GrantRow, process: PeerProcess | null | undefined, instanceId: string): boolean {
  if (grant.instance_id !== null && grant.instance_id !== instanceId) return false;
  if (grant.binding === "client") {
    // Grants from before bindings with the old `process` scope still bind to their process.
    if (grant.scope !== "process") return true;
  }
  if (process === null || process === undefined) return false;
  // A connection held by several processes is none of them (only "any program" grants serve it).
  if (isShared(process)) return false;
  switch (grant.binding) {
    case "process":
    case "client": {
      const same =
        grant.process_pid === process.pid &&
        grant.process_start_time !== null &&
        grant.process_start_time === process.startTime;
      // The program the process ran when approved: after an exec (same pid and start time) it is another.
      return same && (grant.program_key === null || grant.program_key === programFingerprint(process));
    }
    case "program":
      return grant.program_key !== null && grant.program_key === programKey(process);
    case "session":
      return (
        grant.program_key !== null &&
        grant.program_key === programKey(process) &&
        grant.session_key !== null &&
        grant.session_key === sessionKey(process)
      );
  }
}

/**
 * May a caller whose program nobody can see (pyper-sdk on the authority's own network endpoints)
 * read this grant's value? Only a readable grant for "any program of this client ID" on `instanceId`
 * does: a grant bound to a program, a terminal session or a process holds there as anywhere, and a
 * use-only grant never gives its value to be read.
 */
export function servesUnidentified(grant: GrantRow, instanceId: string): boolean {
  return bindingMatches(grant, null, instanceId) && grantMode(grant).kind === "read";
}

/** Why a session-bound grant has ended by itself at `t`, or null while it lives (1Password CLI limits). */
function sessionEnded(grant: GrantRow, t: number): string | null {
  if (grant.binding !== "session") return null;
  if (grant.created_at + SESSION_MAX_MS <= t) return "session_limit";
  if ((grant.last_used_at ?? grant.created_at) + SESSION_IDLE_MS <= t) return "idle";
  return null;
}

/** What the caller means to do with the value: read it (the SDK's getSecret), or a call to `use`. */
export type GrantUse = { method: string; url: string } | undefined;

/**
 * Throws 403 `destination_not_allowed` unless the call's host is among the secret's hosts (host
 * rules as in a grant's destinations: exact, or `*.domain`; with `:port` when not the default).
 */
function refuseForeignHost(secretName: string, hosts: string[], use: { method: string; url: string }): void {
  let url: URL;
  try {
    url = new URL(use.url);
  } catch {
    throw new ServiceError(400, "invalid_request", "The call's URL is not a valid URL.");
  }
  const verdict =
    hosts.length === 0
      ? { ok: false }
      : destinationAllows({ kind: "use", destinations: hosts.map((host) => ({ host })) }, use.method, url);
  if (!verdict.ok) {
    const where = hosts.length === 0 ? "no host (its host list could not be read)" : hosts.join(", ");
    throw new ServiceError(
      403,
      "destination_not_allowed",
      `${secretName} may only be sent to ${where}, not to ${url.host}.`,
    );
  }
}

/**
 * Checks what the schema cannot: the time zone is one this runtime knows, the hours do not end
 * before they start, and the end date lies ahead. 400 `invalid_request` with a sentence.
 */
export function validatePolicy(policy: GrantPolicy, now: number): void {
  if (policy.timeZone !== undefined) {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: policy.timeZone });
    } catch {
      throw new ServiceError(
        400,
        "invalid_request",
        `Unknown time zone ${JSON.stringify(policy.timeZone)}; use an IANA name such as Europe/Berlin.`,
      );
    }
  }
  if (policy.hours !== undefined && policy.hours.toHour <= policy.hours.fromHour)
    throw new ServiceError(
      400,
      "invalid_request",
      `Allowed hours must end after they start (${policy.hours.fromHour}–${policy.hours.toHour}).`,
    );
  if (policy.endsAt !== undefined && policy.endsAt <= now)
    throw new ServiceError(400, "invalid_request", "The end date has already passed.");
}

/** The grants part of the service. */
export function createGrants(deps: ServiceDeps, audit: AuditLog) {
  const { db, bus, now, macs } = deps;

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
      .select([
        "agents.client_id as agent_client_id",
        "agents.display_name as agent_name",
        "secrets.name as secret_name",
      ]);
  }
  type ViewRow = Awaited<ReturnType<ReturnType<typeof viewQuery>["executeTakeFirstOrThrow"]>>;

  function toView(g: ViewRow): GrantView {
    return {
      id: g.id,
      agentClientId: g.agent_client_id,
      agentName: g.agent_name,
      variable: g.variable,
      secretName: g.secret_name ?? "(deleted)",
      // Stored as "until"; shown with the request's word for it (one vocabulary in the contract).
      scope: g.scope === "until" ? "duration" : g.scope,
      expiresAt: g.expires_at,
      process: g.process_pid === null ? null : { pid: g.process_pid, startTime: g.process_start_time },
      instanceId: g.instance_id,
      requestId: g.request_id,
      createdAt: g.created_at,
      lastUsedAt: g.last_used_at,
      endedAt: g.ended_at,
      endReason: g.end_reason,
      legacy: g.legacy === 1,
      binding: bindingView(g),
      mode: grantMode(g),
      policy: grantPolicy(g),
    };
  }

  function bindingView(g: GrantRow): GrantBindingView {
    const program = parseStored(g.program, ProgramSchema);
    const leader = /^session:\d+:(\d+):(\d+)$/.exec(g.session_key ?? "");
    return {
      kind: g.binding,
      program,
      sessionId: g.session_id,
      sessionLeader: leader === null ? null : { pid: Number(leader[1]), startTime: Number(leader[2]) },
    };
  }

  /** The client ID of a grant's agent (part of the grant's MAC); "" when the agent row is gone. */
  async function clientIdOf(grant: GrantRow): Promise<string> {
    return (
      (await db.selectFrom("agents").select("client_id").where("id", "=", grant.agent_id).executeTakeFirst())
        ?.client_id ?? ""
    );
  }

  /**
   * The MAC a grant gets with `change` applied: a fresh one when its current MAC is valid, else the
   * one it has (a row that was tampered with stays refused, whatever is done to it).
   */
  function remac(grant: GrantRow, clientId: string, change: Partial<GrantRow>): string | null {
    return macs.grant.valid(grant, clientId) ? macs.grant.mac({ ...grant, ...change }, clientId) : grant.mac;
  }

  /** Ends a live grant once (the first caller wins), audits it and tells the Link. False when it had already ended. */
  async function endGrant(grant: GrantRow, reason: string, actor: string): Promise<boolean> {
    const clientId = await clientIdOf(grant);
    const t = now();
    const r = await db
      .updateTable("grants")
      .set({ ended_at: t, end_reason: reason, mac: remac(grant, clientId, { ended_at: t }) })
      .where("id", "=", grant.id)
      .where("ended_at", "is", null)
      .executeTakeFirst();
    const ended = Number(r.numUpdatedRows) === 1;
    if (ended) {
      // The event names its agent, so filtering Activity by agent shows revocations and expiries too.
      const agent = clientId === "" ? undefined : { client_id: clientId };
      await audit.record({
        userId: grant.user_id,
        actor,
        action: "grant.ended",
        outcome: reason,
        agentClientId: agent?.client_id ?? null,
        variable: grant.variable,
        grantId: grant.id,
        program: boundProgram(grant),
      });
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
      const row = await viewQuery()
        .where("grants.id", "=", grantId)
        .where("grants.user_id", "=", userId)
        .executeTakeFirst();
      if (row === undefined || !macs.grant.valid(row, row.agent_client_id))
        throw new ServiceError(404, "grant_not_found", `No grant ${grantId}.`);
      return toView(row);
    },

    /** The user's grants, newest first (live ones only unless `includeEnded`), at most 1,000. */
    list: async (userId: string, includeEnded: boolean): Promise<GrantView[]> => {
      let q = viewQuery().where("grants.user_id", "=", userId);
      if (!includeEnded) q = q.where("grants.ended_at", "is", null);
      const rows = await q.orderBy("grants.created_at", "desc").limit(1000).execute();
      return rows.filter((g) => macs.grant.valid(g, g.agent_client_id)).map(toView);
    },

    /**
     * The user's live grants approved before proofs of presence existed, for the person to keep or
     * end: those bound to any program of the client ID (`client`, i.e. `--bind any`) first, then
     * the newest.
     */
    listLegacy: async (userId: string): Promise<GrantView[]> => {
      const rows = await viewQuery()
        .where("grants.user_id", "=", userId)
        .where("grants.ended_at", "is", null)
        .where("grants.legacy", "=", 1)
        .orderBy("grants.created_at", "desc")
        .limit(1000)
        .execute();
      const valid = rows.filter((g) => macs.grant.valid(g, g.agent_client_id));
      return [...valid.filter((g) => g.binding === "client"), ...valid.filter((g) => g.binding !== "client")].map(
        toView,
      );
    },

    /**
     * Keeps the listed legacy grants (the person said yes, with a proof of presence checked by the
     * caller): they are no longer legacy. Ids that are not live, valid legacy grants of `userId` are
     * skipped. Returns how many were kept; audited as `grant.kept`.
     */
    keepLegacy: async (userId: string, grantIds: string[]): Promise<number> => {
      let kept = 0;
      for (const id of new Set(grantIds)) {
        const g = await viewQuery()
          .where("grants.id", "=", id)
          .where("grants.user_id", "=", userId)
          .where("grants.ended_at", "is", null)
          .where("grants.legacy", "=", 1)
          .executeTakeFirst();
        if (g === undefined || !macs.grant.valid(g, g.agent_client_id)) continue;
        const r = await db
          .updateTable("grants")
          .set({ legacy: 0, mac: macs.grant.mac({ ...g, legacy: 0 }, g.agent_client_id) })
          .where("id", "=", id)
          .where("legacy", "=", 1)
          .where("ended_at", "is", null)
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) !== 1) continue;
        kept++;
        await audit.record({
          userId,
          actor: "user",
          action: "grant.kept",
          outcome: "kept",
          agentClientId: g.agent_client_id,
          variable: g.variable,
          grantId: id,
          detail: `binding ${g.binding}`,
        });
        await bus.publish({ type: "grant.changed", userId, id, status: "policy_changed" });
      }
      return kept;
    },

    /**
     * The grant that lets this agent program have `variable` now, ending expired and idle ones on
     * the way. Only grants of `ownerId` (the instance's account) count: a grant never serves under
     * another account. The binding is checked against the program identity the Link read from the
     * OS. For a read (`use` undefined) a use-only grant does not count; for a call, a grant whose
     * destinations do not include it does not either — if such a grant is all there is, the answer
     * is 403 `destination_not_allowed` with the reason, or, with `askBeyond`, null (a new request).
     */
    findLive: async (
      ownerId: string,
      agent: AgentRow,
      variable: string,
      instanceId: string,
      process: PeerProcess | null | undefined,
      use?: GrantUse,
      askBeyond = false,
    ): Promise<GrantRow | null> => {
      if (agent.user_id !== ownerId) return null;
      const grants = await db
        .selectFrom("grants")
        .selectAll()
        .where("agent_id", "=", agent.id)
        .where("user_id", "=", ownerId)
        .where("variable", "=", variable)
        .where("ended_at", "is", null)
        .execute();
      const t = now();
      let refused: string | null = null;
      for (const g of grants) {
        // A row the authority did not write (its MAC is missing or wrong) grants nothing.
        if (!macs.grant.valid(g, agent.client_id)) continue;
        if (g.scope === "until" && g.expires_at !== null && g.expires_at <= t) {
          await endGrant(g, "expired", "system");
          continue;
        }
        const ended = sessionEnded(g, t);
        if (ended !== null) {
          await endGrant(g, ended, "system");
          continue;
        }
        if (!bindingMatches(g, process, instanceId)) continue;
        const mode = grantMode(g);
        if (use === undefined) {
          if (mode.kind === "use") {
            refused = "this grant allows using the secret only through Piper Link's calls, not reading it";
            continue;
          }
          return g;
        }
        let url: URL;
        try {
          url = new URL(use.url);
        } catch {
          throw new ServiceError(400, "invalid_request", "The call's URL is not a valid URL.");
        }
        const verdict = destinationAllows(mode, use.method, url);
        if (verdict.ok) return g;
        refused = verdict.reason;
      }
      if (refused !== null && !(askBeyond && use !== undefined))
        throw new ServiceError(403, "destination_not_allowed", `Not allowed: ${refused}.`);
      return null;
    },

    /**
     * Reads the grant's secret, ends a `once` grant atomically, records the use. Null when it cannot
     * serve any more. For a call (`use`), the secret's own host list must include the call's host,
     * else 403 `destination_not_allowed` ("OPENAI_API_KEY may only be sent to api.openai.com");
     * `hostLimited` then tells the caller the answer must not be reused for other calls.
     * 403 `policy_violation` when the grant's policy refuses this use.
     */
    deliver: async (
      grant: GrantRow,
      agent: AgentRow,
      via: string,
      use?: GrantUse,
      program: AuditProgram | null = null,
    ): Promise<{ value: string; expiresAt: number | null; hostLimited: boolean } | null> => {
      if (grant.agent_id !== agent.id || !macs.grant.valid(grant, agent.client_id)) return null;
      const policy = grantPolicy(grant);
      if (policy !== null) {
        // Policy limits are checked on every use and fail closed (issue 14 item 4).
        const t = now();
        const uses = await db
          .selectFrom("audit_events")
          .select((eb) => [
            eb.fn.countAll<string | number>().as("day"),
            eb.fn
              .sum<string | number | null>(
                eb
                  .case()
                  .when("at", ">", t - 3600_000)
                  .then(1)
                  .else(0)
                  .end(),
              )
              .as("hour"),
          ])
          .where("grant_id", "=", grant.id)
          .where("action", "=", "secret.delivered")
          .where("at", ">", t - 24 * 3600_000)
          .executeTakeFirstOrThrow();
        const verdict = checkPolicy(policy, {
          now: t,
          usesLastHour: Number(uses.hour ?? 0),
          usesLastDay: Number(uses.day),
        });
        if (!verdict.ok)
          throw new ServiceError(403, "policy_violation", `Refused by this grant's policy: ${verdict.reason}.`);
      }
      const secret = await readSecret(deps, grant.user_id, grant.secret_id);
      if (secret === null) {
        await endGrant(grant, "secret_deleted", "system");
        return null;
      }
      // The secret's own hosts bound every grant's destinations; reads are not about where the Link sends it.
      if (use !== undefined && secret.hosts !== null) refuseForeignHost(secret.name, secret.hosts, use);
      if (grant.scope === "once") {
        // Only one caller may use a once-grant, even with several authority processes.
        const t = now();
        const r = await db
          .updateTable("grants")
          .set({
            ended_at: t,
            end_reason: "used",
            last_used_at: t,
            mac: macs.grant.mac({ ...grant, ended_at: t }, agent.client_id),
          })
          .where("id", "=", grant.id)
          .where("ended_at", "is", null)
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) !== 1) return null;
        await bus.publish({ type: "grant.changed", userId: grant.user_id, id: grant.id, status: "used" });
      } else {
        await db.updateTable("grants").set({ last_used_at: now() }).where("id", "=", grant.id).execute();
      }
      await audit.record({
        userId: grant.user_id,
        actor: `agent:${agent.client_id}`,
        action: "secret.delivered",
        outcome: "ok",
        agentClientId: agent.client_id,
        variable: grant.variable,
        grantId: grant.id,
        secretName: secret.name,
        detail: via,
        program,
      });
      return {
        value: secret.value,
        expiresAt: grant.scope === "until" ? grant.expires_at : null,
        hostLimited: use !== undefined && secret.hosts !== null,
      };
    },

    /**
     * Replaces a grant's policy limits (null removes them), audits `grant.policy_changed` and
     * publishes `grant.changed`. 404 `grant_not_found`; 409 `grant_ended` for a grant that ended
     * (its limits no longer matter); 400 `invalid_request` for an unknown time zone, hours that
     * end before they start, or an end date in the past.
     */
    updatePolicy: async (userId: string, grantId: string, policy: GrantPolicy | null): Promise<GrantView> => {
      const grant = await db
        .selectFrom("grants")
        .selectAll()
        .where("id", "=", grantId)
        .where("user_id", "=", userId)
        .executeTakeFirst();
      const clientId = grant === undefined ? "" : await clientIdOf(grant);
      if (grant === undefined || !macs.grant.valid(grant, clientId))
        throw new ServiceError(404, "grant_not_found", `No grant ${grantId}.`);
      if (grant.ended_at !== null)
        throw new ServiceError(409, "grant_ended", `Grant ${grantId} has ended; its limits can no longer change.`);
      if (policy !== null) validatePolicy(policy, now());
      const stored = policy === null ? null : JSON.stringify(policy);
      await db
        .updateTable("grants")
        .set({ policy: stored, mac: macs.grant.mac({ ...grant, policy: stored }, clientId) })
        .where("id", "=", grantId)
        .execute();
      await audit.record({
        userId,
        actor: "user",
        action: "grant.policy_changed",
        outcome: policy === null ? "none" : "limited",
        agentClientId: clientId === "" ? null : clientId,
        variable: grant.variable,
        grantId,
        detail: policy === null ? null : JSON.stringify(policy),
      });
      await bus.publish({ type: "grant.changed", userId, id: grantId, status: "policy_changed" });
      return toView(await viewQuery().where("grants.id", "=", grantId).executeTakeFirstOrThrow());
    },

    /** Ends one of the user's grants (if live) and returns it. 404 `grant_not_found`. */
    revoke: async (userId: string, grantId: string, reason: string): Promise<GrantView> => {
      const grant = await db
        .selectFrom("grants")
        .selectAll()
        .where("id", "=", grantId)
        .where("user_id", "=", userId)
        .executeTakeFirst();
      if (grant === undefined) throw new ServiceError(404, "grant_not_found", `No grant ${grantId}.`);
      if (grant.ended_at === null) await endGrant(grant, reason, reason === "revoked" ? "user" : "link");
      const row = await viewQuery().where("grants.id", "=", grantId).executeTakeFirstOrThrow();
      return toView(row);
    },

    /** Ends every live grant of a secret (it is being deleted); returns how many ended. */
    endGrantsOfSecret: async (secretId: string, reason: string, actor: string): Promise<number> => {
      return endAll(
        await db
          .selectFrom("grants")
          .selectAll()
          .where("secret_id", "=", secretId)
          .where("ended_at", "is", null)
          .execute(),
        reason,
        actor,
      );
    },

    /** Ends every live grant made on an instance (it signed out); returns how many ended. */
    endGrantsOfInstance: async (instanceId: string, reason: string, actor: string): Promise<number> => {
      return endAll(
        await db
          .selectFrom("grants")
          .selectAll()
          .where("instance_id", "=", instanceId)
          .where("ended_at", "is", null)
          .execute(),
        reason,
        actor,
      );
    },
  };
}
