/**
 * The agent's path and the person's decision: `resolve` (the value when a live grant exists, else
 * a new or reused pending request), waiting for a request's outcome, approve (creates the grant in
 * the same transaction that decides the request), deny, the request list (one joined query), and
 * expiry. Agent-facing calls name the caller's account: the instance must be that account's.
 */
import {
  auditProgram,
  REQUEST_LIST_LIMIT,
  type AgentResolveBody,
  type AgentResolveResult,
  type ApproveBody,
  type GrantView,
  type RequestView,
} from "../../shared/authority.js";
import { DEFAULT_GRANT_TERMS, type GrantBindingKind } from "../../shared/grant-terms.js";
import {
  INLINE_SCRIPT,
  isShared,
  programFingerprint,
  programKey,
  sessionKey,
  type PeerProcess,
} from "../../shared/process.js";
import { normalizeVariable } from "../../shared/protocol.js";
import { sql } from "kysely";
import { z } from "zod";
import { newId } from "../ids.js";
import type { AuditLog } from "./audit.js";
import {
  parseStored,
  parseStoredProcess,
  type AgentRow,
  type GrantRow,
  type RequestRow,
  type ServiceDeps,
} from "./deps.js";
import { ServiceError } from "./errors.js";
import { grantTerms, validatePolicy, type Grants } from "./grants.js";
import type { InstancesAgents } from "./instances-agents.js";
import type { Limits } from "./limits.js";
import type { Secrets } from "./secrets.js";

export type RequestStatus = RequestRow["status"];
export type Requests = ReturnType<typeof createRequests>;

interface Parts {
  audit: AuditLog;
  grants: Grants;
  secrets: Secrets;
  instances: InstancesAgents;
  limits: Limits;
}

/**
 * What a grant with `binding` stores of the request's program identity. 400 `invalid_request` when
 * the identity lacks what the binding needs (a process never identified cannot be bound to).
 */
function bindingFor(
  binding: GrantBindingKind,
  process: PeerProcess | null,
): { programKey: string | null; program: string | null; sessionKey: string | null; sessionId: number | null } {
  const none = { programKey: null, program: null, sessionKey: null, sessionId: null };
  if (binding === "client") return none;
  if (process !== null && isShared(process)) {
    const others = (process.sharedWith ?? [])
      .map((p) => `pid ${p.pid}${p.executable ? ` ${p.executable}` : ""}`)
      .join(", ");
    throw new ServiceError(
      400,
      "invalid_request",
      `The connection that asked is held by several processes (pid ${process.pid} and ${others}), so Piper Link cannot tell which program asks. Only "any program that says it is this agent" can be approved, knowingly.`,
    );
  }
  const key = process === null ? null : programKey(process);
  if (binding === "process") {
    if (process === null || process.startTime === null)
      throw new ServiceError(
        400,
        "invalid_request",
        "This request carries no process identity, so it cannot be approved for the life of a process.",
      );
    // The program too: a process that exec'd another program keeps its pid and start time.
    return { ...none, programKey: programFingerprint(process) };
  }
  const why = process?.unverifiable ?? null;
  if (why !== null) {
    throw new ServiceError(
      400,
      "invalid_request",
      `Piper Link cannot recognise this program again: ${why}. Approve it once or while this process runs.`,
    );
  }
  if (process === null || key === null || process.executable === null) {
    throw new ServiceError(
      400,
      "invalid_request",
      "Piper Link could not identify the program that asked, so the approval cannot be bound to it. Choose a narrower (once, this process) or, knowingly, a wider binding.",
    );
  }
  // Inline code is shown with its command line: the code is what the grant binds to (programKey).
  const inline = process.script === INLINE_SCRIPT ? { commandLine: process.commandLine } : {};
  const loads = (process.loads ?? []).length > 0 ? { loads: process.loads } : {};
  const program = JSON.stringify({
    executable: process.executable,
    script: process.script ?? null,
    cwd: process.cwd,
    ...inline,
    ...loads,
    ...(process.contentHash !== undefined ? { contentHash: process.contentHash } : {}),
  });
  if (binding === "program") return { programKey: key, program, sessionKey: null, sessionId: null };
  const session = sessionKey(process);
  if (session === null)
    throw new ServiceError(
      400,
      "invalid_request",
      "The program that asked runs outside a terminal session, so the approval cannot be bound to one. Choose this program or this process instead.",
    );
  return { programKey: key, program, sessionKey: session, sessionId: process.sessionId ?? null };
}

/** The approved program as a grant stores it for display (grants.program). */
const StoredProgramSchema = z.object({
  executable: z.string(),
  script: z.string().nullable(),
  cwd: z.string().nullable(),
  commandLine: z.array(z.string()).nullable().optional(),
});

/**
 * The most pending requests at once: per identified program (program key) and per instance. Far
 * above what a person answers; a flood beyond them gets 429 `rate_limited`.
 */
export const PENDING_LIMITS = { perProgram: 20, perInstance: 200 } as const;

/** The requests part; `requestTtlMs` is how long a pending request waits for the person. */
export function createRequests(deps: ServiceDeps, parts: Parts, requestTtlMs: number) {
  const { db, bus, now } = deps;
  const { audit, grants, secrets, instances, limits } = parts;

  /** Requests with their agent in one query (a join, not a query per row). */
  function viewQuery() {
    return db
      .selectFrom("requests")
      .innerJoin("agents", "agents.id", "requests.agent_id")
      .selectAll("requests")
      .select(["agents.client_id as agent_client_id", "agents.display_name as agent_name"]);
  }
  type ViewRow = Awaited<ReturnType<ReturnType<typeof viewQuery>["executeTakeFirstOrThrow"]>>;

  function toView(row: ViewRow): RequestView {
    return {
      id: row.id,
      agentClientId: row.agent_client_id,
      // The name the agent gave when it asked (stored on the request), not its latest one.
      agentName: row.agent_display_name,
      variable: row.variable,
      reason: row.reason,
      process: parseStoredProcess(row.process),
      instanceId: row.instance_id,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
      // Past its expiry a request is expired, even before the sweeper has written that down.
      status: row.status === "pending" && row.expires_at <= now() ? "expired" : row.status,
      grantId: row.grant_id,
      batchId: row.batch_id,
      requesterWaits: row.requester_waits !== 0,
    };
  }

  async function pendingRequestFor(userId: string, requestId: string): Promise<RequestRow> {
    const row = await db
      .selectFrom("requests")
      .selectAll()
      .where("id", "=", requestId)
      .where("user_id", "=", userId)
      .executeTakeFirst();
    if (row === undefined) throw new ServiceError(404, "request_not_found", `No request ${requestId}.`);
    if (row.status === "requester_gone") {
      throw new ServiceError(
        409,
        "requester_gone",
        `The program that asked (request ${requestId}) has exited; there is nobody to give it to.`,
      );
    }
    if (row.status !== "pending" || row.expires_at <= now()) {
      throw new ServiceError(
        409,
        "request_not_pending",
        `Request ${requestId} is ${row.status === "pending" ? "expired" : row.status}; nothing to decide.`,
      );
    }
    return row;
  }

  /**
   * The pending request of this agent program for this variable on this instance, or a new one
   * (audited and announced). Requests are keyed by client ID + variable + program identity (issue
   * 13 item 4): another program claiming the same client ID gets its own request, and a request
   * from a process that has since exited is not joined by a newcomer. A new request joins `batchId`
   * (the variables of one `resolveMany`); a reused one keeps its own batch. A requester that never
   * waits (`requesterWaits` false: pyper-sdk) reuses the request of the same program in the same
   * terminal session, whichever run made it, and the request then names the latest run's process.
   */
  async function createOrReuse(
    userId: string,
    instanceId: string,
    agent: AgentRow,
    variable: string,
    reason: string | null,
    process: PeerProcess | null,
    batchId: string | null = null,
    requesterWaits = true,
  ): Promise<RequestRow> {
    const t = now();
    const key = process === null ? null : programKey(process);
    let q = db
      .selectFrom("requests")
      .selectAll()
      .where("agent_id", "=", agent.id)
      .where("instance_id", "=", instanceId)
      .where("variable", "=", variable)
      .where("status", "=", "pending")
      .where("expires_at", ">", t);
    q = key === null ? q.where("program_key", "is", null) : q.where("program_key", "=", key);
    const candidates = await q.execute();
    // The same program, and the same process when both are known: a new process of the program
    // asks anew (its predecessor's request names a pid that is not the one a grant would serve).
    const existing = candidates.find((r) => {
      const p = parseStoredProcess(r.process);
      if (process === null || p === null) return true;
      if (p.pid === process.pid && p.startTime === process.startTime) return true;
      // A new run of a program that never waits, in the same terminal session (or, like it, in none),
      // asks the same thing.
      return !requesterWaits && r.requester_waits === 0 && sessionKey(p) === sessionKey(process);
    });
    if (existing !== undefined) {
      // Asked again, the card follows the latest ask: a program that never waits names its latest
      // run, and a retried `resolveMany` groups under its latest batch (everything the agent is
      // waiting for now, not part of an older ask). Either change is announced like a new request.
      const changes: Partial<Pick<RequestRow, "process" | "batch_id">> = {};
      const latest = process === null ? null : JSON.stringify(process);
      if (latest !== null && !requesterWaits && existing.process !== latest) changes.process = latest;
      if (batchId !== null && existing.batch_id !== batchId) changes.batch_id = batchId;
      if (Object.keys(changes).length === 0) return existing;
      await db.updateTable("requests").set(changes).where("id", "=", existing.id).execute();
      await bus.publish({ type: "request.created", userId, id: existing.id, status: "pending" });
      return { ...existing, ...changes };
    }
    // One program cannot bury the person's Requests (and tray, and notifications) under new requests,
    // by varying its client ID or variable (issue 16 item 16: limit by source).
    const waiting = await db
      .selectFrom("requests")
      // PostgreSQL answers count and sum as strings (bigint, numeric) and a sum over no rows as null.
      .select([
        sql<string | number>`count(*)`.as("all"),
        sql<string | number | null>`sum(case when program_key = ${key ?? ""} then 1 else 0 end)`.as("same"),
      ])
      .where("instance_id", "=", instanceId)
      .where("status", "=", "pending")
      .where("expires_at", ">", t)
      .executeTakeFirstOrThrow();
    const sameProgram = Number(waiting.same ?? 0);
    if (sameProgram >= PENDING_LIMITS.perProgram || Number(waiting.all) >= PENDING_LIMITS.perInstance) {
      const which =
        sameProgram >= PENDING_LIMITS.perProgram
          ? `This program already has ${PENDING_LIMITS.perProgram}`
          : `This machine already has ${PENDING_LIMITS.perInstance}`;
      throw new ServiceError(
        429,
        "rate_limited",
        `${which} requests waiting for an answer in Piper Link; answer them (or let them expire) before asking for more.`,
      );
    }
    const changed = process === null ? false : await changedSinceApproval(agent, variable, process);
    // Only the authority says a program changed; whatever the Link sent in that field is dropped.
    const reported: PeerProcess | null = process === null ? null : { ...process };
    if (reported !== null) delete reported.changedSinceApproval;
    const row: RequestRow = {
      id: newId("req"),
      user_id: userId,
      instance_id: instanceId,
      agent_id: agent.id,
      variable,
      reason,
      process:
        reported === null ? null : JSON.stringify(changed ? { ...reported, changedSinceApproval: true } : reported),
      agent_display_name: agent.display_name,
      created_at: t,
      expires_at: t + requestTtlMs,
      status: "pending",
      decided_at: null,
      grant_id: null,
      program_key: key,
      batch_id: batchId,
      requester_waits: requesterWaits ? 1 : 0,
    };
    await db.insertInto("requests").values(row).execute();
    await audit.record({
      userId,
      actor: `agent:${agent.client_id}`,
      action: "request.created",
      outcome: "pending",
      agentClientId: agent.client_id,
      variable,
      requestId: row.id,
      detail: process === null ? null : `pid ${process.pid} ${process.executable ?? ""}`.trim(),
      program: auditProgram(process),
    });
    await bus.publish({ type: "request.created", userId, id: row.id, status: "pending" });
    return row;
  }

  /**
   * Was this program (same executable, script and folder, or the same inline code) approved for this
   * agent and variable before, with other content or other code loaded into it? Then the new request
   * is that program changed, and its card says so (an upgrade is one approval, not a silent pass).
   */
  async function changedSinceApproval(agent: AgentRow, variable: string, process: PeerProcess): Promise<boolean> {
    const key = programKey(process);
    if (key === null || process.executable === null) return false;
    const earlier = await db
      .selectFrom("grants")
      .select(["program", "program_key"])
      .where("agent_id", "=", agent.id)
      .where("variable", "=", variable)
      .where("binding", "in", ["program", "session"])
      .where("program", "is not", null)
      .orderBy("created_at", "desc")
      .limit(50)
      .execute();
    const inline = process.script === INLINE_SCRIPT ? JSON.stringify(process.commandLine ?? null) : null;
    return earlier.some((g) => {
      if (g.program_key === key || g.program === null) return false;
      const p = parseStored(g.program, StoredProgramSchema);
      return (
        p !== null &&
        p.executable === process.executable &&
        p.script === (process.script ?? null) &&
        p.cwd === process.cwd &&
        (inline === null || JSON.stringify(p.commandLine ?? null) === inline)
      );
    });
  }

  async function view(requestId: string): Promise<RequestView> {
    return toView(await viewQuery().where("requests.id", "=", requestId).executeTakeFirstOrThrow());
  }

  return {
    createOrReuse,

    /**
     * Agent API: the value when a live grant exists, else a (new or reused) pending request.
     * `userId` is the caller's account (its bearer credential); the instance must be its own and
     * live, else 401 `invalid_instance`. 429 `rate_limited` per agent; 400 `invalid_request` for
     * a variable with no usable characters.
     */
    resolve: async (userId: string, body: AgentResolveBody): Promise<AgentResolveResult> => {
      limits.agent(body.instanceId, body.agentClientId);
      const variable = normalizeVariable(body.variable);
      if (variable.length === 0)
        throw new ServiceError(
          400,
          "invalid_request",
          `Variable ${JSON.stringify(body.variable)} has no usable characters.`,
        );
      await instances.requireOwnInstance(userId, body.instanceId);
      const agent = await instances.upsertAgent(userId, body.agentClientId, body.agentName ?? null);
      // A once-grant can be claimed by another caller between finding and delivering it: look again.
      for (let attempt = 0; attempt < 3; attempt++) {
        const grant = await grants.findLive(
          userId,
          agent,
          variable,
          body.instanceId,
          body.process,
          body.use,
          body.askBeyondGrant ?? false,
        );
        if (grant === null) break;
        const delivered = await grants.deliver(
          grant,
          agent,
          body.use === undefined ? "link" : "link call",
          body.use,
          auditProgram(body.process),
        );
        if (delivered !== null) {
          const terms = grantTerms(grant);
          // A grant with policy limits is counted at every use, so the Link must ask each time; a
          // value for a call to a secret with its own hosts too, since the Link's cache of call
          // values does not know those hosts.
          return {
            status: "granted",
            value: delivered.value,
            grantId: grant.id,
            expiresAt: delivered.expiresAt,
            variable,
            reusable: grant.scope !== "once" && terms.policy === null && !delivered.hostLimited,
            terms,
          };
        }
      }
      const request = await createOrReuse(
        userId,
        body.instanceId,
        agent,
        variable,
        body.reason ?? null,
        body.process ?? null,
        body.batchId ?? null,
        body.requesterWaits ?? true,
      );
      return { status: "pending", requestId: request.id, expiresAt: request.expires_at };
    },

    /**
     * Agent API: waits until the request is decided or expires, `timeoutMs` passes, or `signal`
     * aborts; returns the status then. The instance must be `userId`'s (401 `invalid_instance`)
     * and the request must have been made on it (404 `request_not_found`).
     */
    waitForRequest: async (
      userId: string,
      identity: { instanceId: string; agentClientId: string },
      requestId: string,
      timeoutMs: number,
      signal?: AbortSignal,
    ): Promise<RequestStatus> => {
      await instances.requireOwnInstance(userId, identity.instanceId);
      const read = async (): Promise<RequestRow> => {
        const row = await db
          .selectFrom("requests")
          .selectAll()
          .where("id", "=", requestId)
          .where("user_id", "=", userId)
          .where("instance_id", "=", identity.instanceId)
          .executeTakeFirst();
        if (row === undefined) throw new ServiceError(404, "request_not_found", `No request ${requestId}.`);
        return row;
      };
      let wake: () => void = () => undefined;
      const woken = new Promise<void>((resolve) => {
        wake = resolve;
      });
      // Subscribe before reading, so a decision between the read and the wait is not missed.
      const unsubscribe = bus.subscribe((e) => {
        if (e.type === "request.decided" && e.id === requestId) wake();
      });
      // A decision may have been missed (the bus lost its database connection): read again.
      const unGap = bus.onGap(() => wake());
      try {
        const row = await read();
        if (row.status !== "pending") return row.status;
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, Math.max(0, Math.min(timeoutMs, row.expires_at - now() + 50)));
        });
        const aborted = new Promise<void>((resolve) =>
          signal?.addEventListener("abort", () => resolve(), { once: true }),
        );
        await Promise.race([woken, timedOut, aborted]);
        clearTimeout(timer);
        const after = await read();
        if (after.status === "pending" && after.expires_at <= now()) return "expired";
        return after.status;
      } finally {
        unsubscribe();
        unGap();
      }
    },

    /**
     * Approves a pending request with a scope, creating its grant in the same transaction (a
     * request is decided once, across processes). 404 `request_not_found`, 409
     * `request_not_pending`, 409 `secret_not_found`, 400 for a process scope without identity.
     */
    approve: async (userId: string, requestId: string, body: ApproveBody): Promise<GrantView> => {
      const request = await pendingRequestFor(userId, requestId);
      const secret = await secrets.findByName(userId, body.secretName ?? request.variable);
      if (secret === null) {
        const shown = body.secretName ?? request.variable.toUpperCase();
        throw new ServiceError(
          409,
          "secret_not_found",
          `There is no secret named ${shown} yet. Add it (piper-link secrets set ${shown}) and approve again.`,
        );
      }
      if (body.policy !== undefined && body.policy !== null) validatePolicy(body.policy, now());
      const process = parseStoredProcess(request.process);
      // Default: the program that asked. A request whose program could not be identified (pyper-sdk
      // on the authority's own endpoints, an OS where the Link cannot read processes) showed the
      // person "program unknown": binding to the client ID is then all there is, and the window says so.
      const identified = process !== null && process.executable !== null && programKey(process) !== null;
      // A program that cannot be recognised again (but is one process, alone on its connection) is
      // bound to that process by default; an unidentified or shared one only to "any program".
      const processOnly =
        process !== null &&
        !identified &&
        !isShared(process) &&
        (process.unverifiable ?? null) !== null &&
        process.startTime !== null;
      const binding: GrantBindingKind =
        body.binding ??
        (body.scope.kind === "process" || processOnly
          ? "process"
          : identified
            ? DEFAULT_GRANT_TERMS.binding
            : "client");
      const bound = bindingFor(binding, process);
      const t = now();
      const clientId = (
        await db.selectFrom("agents").select("client_id").where("id", "=", request.agent_id).executeTakeFirstOrThrow()
      ).client_id;
      const terms: Omit<GrantRow, "mac"> = {
        id: newId("gr"),
        user_id: userId,
        agent_id: request.agent_id,
        variable: request.variable,
        secret_id: secret.id,
        scope: body.scope.kind === "duration" ? "until" : body.scope.kind,
        expires_at: body.scope.kind === "duration" ? t + body.scope.durationMs : null,
        instance_id: request.instance_id,
        process_pid: binding === "process" && process !== null ? process.pid : null,
        process_start_time: binding === "process" && process !== null ? process.startTime : null,
        request_id: request.id,
        created_at: t,
        last_used_at: null,
        ended_at: null,
        end_reason: null,
        binding,
        program_key: bound.programKey,
        program: bound.program,
        session_key: bound.sessionKey,
        session_id: bound.sessionId,
        mode: body.mode === undefined || body.mode.kind === "read" ? null : JSON.stringify(body.mode),
        policy: body.policy === undefined || body.policy === null ? null : JSON.stringify(body.policy),
        legacy: 0,
      };
      const grant: GrantRow = { ...terms, mac: deps.macs.grant.mac(terms, clientId) };
      const decided = await db.transaction().execute(async (trx) => {
        const r = await trx
          .updateTable("requests")
          .set({ status: "approved", decided_at: t, grant_id: grant.id })
          .where("id", "=", request.id)
          .where("status", "=", "pending")
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) !== 1) return false;
        await trx.insertInto("grants").values(grant).execute();
        return true;
      });
      if (!decided) throw new ServiceError(409, "request_not_pending", `Request ${requestId} was decided meanwhile.`);
      const created = await grants.view(userId, grant.id);
      await audit.record({
        userId,
        actor: "user",
        action: "request.approved",
        outcome: grant.scope,
        detail: `binding ${binding}`,
        agentClientId: created.agentClientId,
        variable: request.variable,
        requestId: request.id,
        grantId: grant.id,
        secretName: secret.name,
        program: auditProgram(process),
      });
      await bus.publish({ type: "request.decided", userId, id: request.id, status: "approved" });
      await bus.publish({ type: "grant.changed", userId, id: grant.id, status: "created" });
      return created;
    },

    /** Denies a pending request. Same errors as `approve` for unknown or decided requests. */
    deny: async (userId: string, requestId: string): Promise<RequestView> => {
      const request = await pendingRequestFor(userId, requestId);
      const r = await db
        .updateTable("requests")
        .set({ status: "denied", decided_at: now() })
        .where("id", "=", request.id)
        .where("status", "=", "pending")
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1)
        throw new ServiceError(409, "request_not_pending", `Request ${requestId} was decided meanwhile.`);
      const denied = await view(request.id);
      await audit.record({
        userId,
        actor: "user",
        action: "request.denied",
        outcome: "denied",
        agentClientId: denied.agentClientId,
        variable: request.variable,
        requestId: request.id,
        program: auditProgram(denied.process),
      });
      await bus.publish({ type: "request.decided", userId, id: request.id, status: "denied" });
      return denied;
    },

    /**
     * Ends a pending request whose process exited (the Link that owns the instance saw it go):
     * status `requester_gone`, so approving it fails and the window says why. Returns the request;
     * a request already decided is returned unchanged. 404 `request_not_found`.
     */
    requesterGone: async (userId: string, requestId: string): Promise<RequestView> => {
      const t = now();
      const r = await db
        .updateTable("requests")
        .set({ status: "requester_gone", decided_at: t })
        .where("id", "=", requestId)
        .where("user_id", "=", userId)
        .where("status", "=", "pending")
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 1) {
        const gone = await view(requestId);
        await audit.record({
          userId,
          actor: "link",
          action: "request.ended",
          outcome: "requester_gone",
          agentClientId: gone.agentClientId,
          variable: gone.variable,
          requestId,
          program: auditProgram(gone.process),
        });
        await bus.publish({ type: "request.decided", userId, id: requestId, status: "requester_gone" });
        return gone;
      }
      const row = await viewQuery()
        .where("requests.id", "=", requestId)
        .where("requests.user_id", "=", userId)
        .executeTakeFirst();
      if (row === undefined) throw new ServiceError(404, "request_not_found", `No request ${requestId}.`);
      return toView(row);
    },

    /** The user's requests, newest first, at most REQUEST_LIST_LIMIT; "pending" leaves out those past their expiry. */
    list: async (userId: string, status: RequestStatus | "all"): Promise<RequestView[]> => {
      let q = viewQuery().where("requests.user_id", "=", userId);
      if (status !== "all") q = q.where("requests.status", "=", status);
      if (status === "pending") q = q.where("requests.expires_at", ">", now());
      const rows = await q.orderBy("requests.created_at", "desc").limit(REQUEST_LIST_LIMIT).execute();
      return rows.map(toView);
    },

    /** Marks pending requests past their expiry as expired; run periodically by each process. Returns how many. */
    expire: async (): Promise<number> => {
      const t = now();
      const rows = await db
        .updateTable("requests")
        .set({ status: "expired", decided_at: t })
        .where("status", "=", "pending")
        .where("expires_at", "<=", t)
        .returning(["id", "user_id", "variable", "agent_id", "process"])
        .execute();
      for (const r of rows) {
        // Every event names its agent (Activity filtered by agent shows expiries too).
        const agent = await db.selectFrom("agents").select("client_id").where("id", "=", r.agent_id).executeTakeFirst();
        await audit.record({
          userId: r.user_id,
          actor: "system",
          action: "request.expired",
          outcome: "expired",
          agentClientId: agent?.client_id ?? null,
          variable: r.variable,
          requestId: r.id,
          program: auditProgram(parseStoredProcess(r.process)),
        });
        await bus.publish({ type: "request.decided", userId: r.user_id, id: r.id, status: "expired" });
      }
      return rows.length;
    },
  };
}
