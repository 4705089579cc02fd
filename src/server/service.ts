/**
 * The authority's rules, independent of HTTP: users and their Link tokens, instances, agents,
 * encrypted secrets, grants with scopes, pending requests with expiry, the audit log, and the
 * pyper-sdk credential flow. Every change publishes an event so waiting agents and the Link's
 * event stream see it, in this process or (PostgreSQL) any other.
 */
import type { Kysely, Selectable } from "kysely";
import type { PeerProcess } from "../shared/control.js";
import type {
  AgentResolveBody,
  AgentResolveResult,
  ApproveBody,
  AuditPage,
  AuthorityEvent,
  GrantView,
  RequestView,
  SecretView,
  UsageReport,
} from "../shared/authority.js";
import { normalizeVariable } from "../shared/protocol.js";
import { TokenBucket } from "../shared/rate-limit.js";
import { decryptSecret, encryptSecret, type DataKeys } from "./crypto.js";
import type { AgentsTable, Database, GrantsTable, RequestsTable } from "./db.js";
import type { EventBus } from "./events.js";
import { hashToken, newEventId, newId, newToken } from "./ids.js";

/** An error with the HTTP status and the `{error, error_description}` body pyper-sdk reads. */
export class ServiceError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ServiceError";
  }
}

export interface ServiceOptions {
  db: Kysely<Database>;
  keys: DataKeys;
  bus: EventBus;
  now?: () => number;
  /** How long a pending request waits for the person (default 10 minutes). */
  requestTtlMs?: number;
  /** Lifetime of pyper-sdk scoped credentials (default 5 minutes). */
  scopedTokenTtlMs?: number;
  agentRatePerSecond?: number;
  agentRateBurst?: number;
}

type AgentRow = Selectable<AgentsTable>;
type GrantRow = Selectable<GrantsTable>;
type RequestRow = Selectable<RequestsTable>;

interface AuditInput {
  userId: string;
  actor: string;
  action: string;
  outcome: string;
  agentClientId?: string | null;
  variable?: string | null;
  requestId?: string | null;
  grantId?: string | null;
  secretName?: string | null;
  detail?: string | null;
}

export type AuthorityService = ReturnType<typeof createService>;

export function createService(options: ServiceOptions) {
  const { db, keys, bus } = options;
  const now = options.now ?? Date.now;
  const requestTtlMs = options.requestTtlMs ?? 10 * 60_000;
  const scopedTtlMs = options.scopedTokenTtlMs ?? 5 * 60_000;
  const buckets = new Map<string, TokenBucket>();

  async function audit(e: AuditInput): Promise<void> {
    const at = now();
    await db
      .insertInto("audit_events")
      .values({
        id: newEventId(at),
        user_id: e.userId,
        at,
        actor: e.actor,
        action: e.action,
        outcome: e.outcome,
        agent_client_id: e.agentClientId ?? null,
        variable: e.variable ?? null,
        request_id: e.requestId ?? null,
        grant_id: e.grantId ?? null,
        secret_name: e.secretName ?? null,
        detail: e.detail ?? null,
      })
      .execute();
  }

  function publish(event: AuthorityEvent): Promise<void> {
    return bus.publish(event);
  }

  function limitAgent(key: string): void {
    let bucket = buckets.get(key);
    if (bucket === undefined) {
      bucket = new TokenBucket(options.agentRateBurst ?? 60, options.agentRatePerSecond ?? 30, now);
      buckets.set(key, bucket);
      if (buckets.size > 10_000) buckets.delete(buckets.keys().next().value as string);
    }
    if (!bucket.take()) throw new ServiceError(429, "rate_limited", "Too many requests from this agent; slow down and retry.");
  }

  async function instanceOwner(instanceId: string): Promise<string> {
    const row = await db.selectFrom("instances").select(["user_id"]).where("id", "=", instanceId).executeTakeFirst();
    if (row === undefined) throw new ServiceError(401, "invalid_instance", "This instance ID is not known to the authority. Sign in to Piper Link again.");
    return row.user_id;
  }

  /** The instance must exist and belong to `userId` (the caller's credential), else 401 `invalid_instance` (issue 13 item 3). */
  async function ownedInstance(userId: string, instanceId: string): Promise<void> {
    if ((await instanceOwner(instanceId)) !== userId) throw new ServiceError(401, "invalid_instance", "This instance ID does not belong to the signed-in account. Sign in to Piper Link again.");
  }

  async function upsertAgent(userId: string, clientId: string, name: string | null): Promise<AgentRow> {
    const t = now();
    const existing = await db.selectFrom("agents").selectAll().where("user_id", "=", userId).where("client_id", "=", clientId).executeTakeFirst();
    if (existing !== undefined) {
      await db
        .updateTable("agents")
        .set({ last_seen_at: t, display_name: name ?? existing.display_name })
        .where("id", "=", existing.id)
        .execute();
      return { ...existing, last_seen_at: t, display_name: name ?? existing.display_name };
    }
    const row: AgentRow = { id: newId("ag"), user_id: userId, client_id: clientId, display_name: name, first_seen_at: t, last_seen_at: t };
    try {
      await db.insertInto("agents").values(row).execute();
      return row;
    } catch {
      // Another process inserted it first.
      return db.selectFrom("agents").selectAll().where("user_id", "=", userId).where("client_id", "=", clientId).executeTakeFirstOrThrow();
    }
  }

  function processMatches(grant: GrantRow, process: PeerProcess | null | undefined, instanceId: string): boolean {
    if (grant.scope !== "process") return true;
    return (
      process !== null &&
      process !== undefined &&
      grant.instance_id === instanceId &&
      grant.process_pid === process.pid &&
      grant.process_start_time === process.startTime
    );
  }

  async function endGrant(grant: GrantRow, reason: string, actor: string): Promise<boolean> {
    const r = await db.updateTable("grants").set({ ended_at: now(), end_reason: reason }).where("id", "=", grant.id).where("ended_at", "is", null).executeTakeFirst();
    const ended = Number(r.numUpdatedRows) === 1;
    if (ended) {
      await audit({ userId: grant.user_id, actor, action: "grant.ended", outcome: reason, variable: grant.variable, grantId: grant.id });
      await publish({ type: "grant.changed", userId: grant.user_id, id: grant.id, status: "ended" });
    }
    return ended;
  }

  /** The grant that lets this agent read `variable` now, ending expired ones on the way. */
  async function findLiveGrant(agent: AgentRow, variable: string, instanceId: string, process: PeerProcess | null | undefined): Promise<GrantRow | null> {
    const grants = await db.selectFrom("grants").selectAll().where("agent_id", "=", agent.id).where("variable", "=", variable).where("ended_at", "is", null).execute();
    const t = now();
    for (const g of grants) {
      if (g.scope === "until" && g.expires_at !== null && g.expires_at <= t) {
        await endGrant(g, "expired", "system");
        continue;
      }
      if (processMatches(g, process, instanceId)) return g;
    }
    return null;
  }

  async function secretValue(userId: string, secretId: string): Promise<{ name: string; value: string } | null> {
    const row = await db.selectFrom("secrets").selectAll().where("id", "=", secretId).where("user_id", "=", userId).executeTakeFirst();
    if (row === undefined) return null;
    return { name: row.name, value: decryptSecret(keys, row.key_id, `${userId}:${row.id}`, row.ciphertext) };
  }

  /** Reads the grant's secret, ends a `once` grant atomically, records the use. */
  async function deliver(grant: GrantRow, agent: AgentRow, via: string): Promise<{ value: string; expiresAt: number | null } | null> {
    const secret = await secretValue(grant.user_id, grant.secret_id);
    if (secret === null) {
      await endGrant(grant, "secret_deleted", "system");
      return null;
    }
    if (grant.scope === "once") {
      // Only one caller may use a once-grant, even with several authority processes.
      const r = await db.updateTable("grants").set({ ended_at: now(), end_reason: "used", last_used_at: now() }).where("id", "=", grant.id).where("ended_at", "is", null).executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) return null;
      await publish({ type: "grant.changed", userId: grant.user_id, id: grant.id, status: "used" });
    } else {
      await db.updateTable("grants").set({ last_used_at: now() }).where("id", "=", grant.id).execute();
    }
    await audit({ userId: grant.user_id, actor: `agent:${agent.client_id}`, action: "secret.delivered", outcome: "ok", agentClientId: agent.client_id, variable: grant.variable, grantId: grant.id, secretName: secret.name, detail: via });
    return { value: secret.value, expiresAt: grant.scope === "until" ? grant.expires_at : null };
  }

  async function createOrReuseRequest(userId: string, instanceId: string, agent: AgentRow, variable: string, reason: string | null, process: PeerProcess | null): Promise<RequestRow> {
    const t = now();
    const existing = await db
      .selectFrom("requests")
      .selectAll()
      .where("agent_id", "=", agent.id)
      .where("instance_id", "=", instanceId)
      .where("variable", "=", variable)
      .where("status", "=", "pending")
      .where("expires_at", ">", t)
      .executeTakeFirst();
    if (existing !== undefined) return existing;
    const row: RequestRow = {
      id: newId("req"),
      user_id: userId,
      instance_id: instanceId,
      agent_id: agent.id,
      variable,
      reason,
      process: process === null ? null : JSON.stringify(process),
      created_at: t,
      expires_at: t + requestTtlMs,
      status: "pending",
      decided_at: null,
      grant_id: null,
    };
    await db.insertInto("requests").values(row).execute();
    await audit({ userId, actor: `agent:${agent.client_id}`, action: "request.created", outcome: "pending", agentClientId: agent.client_id, variable, requestId: row.id, detail: process === null ? null : `pid ${process.pid} ${process.executable ?? ""}`.trim() });
    await publish({ type: "request.created", userId, id: row.id, status: "pending" });
    return row;
  }

  async function requestView(row: RequestRow): Promise<RequestView> {
    const agent = await db.selectFrom("agents").selectAll().where("id", "=", row.agent_id).executeTakeFirstOrThrow();
    return {
      id: row.id,
      agentClientId: agent.client_id,
      agentName: agent.display_name,
      variable: row.variable,
      reason: row.reason,
      process: row.process === null ? null : (JSON.parse(row.process) as PeerProcess),
      instanceId: row.instance_id,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
      // Past its expiry a request is expired, even before the sweeper has written that down.
      status: row.status === "pending" && row.expires_at <= now() ? "expired" : row.status,
      grantId: row.grant_id,
    };
  }

  async function grantViews(rows: GrantRow[]): Promise<GrantView[]> {
    const agents = new Map<string, AgentRow>();
    const secrets = new Map<string, string>();
    const out: GrantView[] = [];
    for (const g of rows) {
      let agent = agents.get(g.agent_id);
      if (agent === undefined) {
        agent = await db.selectFrom("agents").selectAll().where("id", "=", g.agent_id).executeTakeFirstOrThrow();
        agents.set(g.agent_id, agent);
      }
      let secretName = secrets.get(g.secret_id);
      if (secretName === undefined) {
        const s = await db.selectFrom("secrets").select(["name"]).where("id", "=", g.secret_id).executeTakeFirst();
        secretName = s?.name ?? "(deleted)";
        secrets.set(g.secret_id, secretName);
      }
      out.push({
        id: g.id,
        agentClientId: agent.client_id,
        agentName: agent.display_name,
        variable: g.variable,
        secretName,
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
      });
    }
    return out;
  }

  async function pendingRequestFor(userId: string, requestId: string): Promise<RequestRow> {
    const row = await db.selectFrom("requests").selectAll().where("id", "=", requestId).where("user_id", "=", userId).executeTakeFirst();
    if (row === undefined) throw new ServiceError(404, "request_not_found", `No request ${requestId}.`);
    if (row.status !== "pending" || row.expires_at <= now()) {
      throw new ServiceError(409, "request_not_pending", `Request ${requestId} is ${row.status === "pending" ? "expired" : row.status}; nothing to decide.`);
    }
    return row;
  }

  async function findSecretByName(userId: string, name: string): Promise<{ id: string; name: string } | null> {
    const wanted = normalizeVariable(name);
    const rows = await db.selectFrom("secrets").select(["id", "name"]).where("user_id", "=", userId).execute();
    return rows.find((r) => normalizeVariable(r.name) === wanted) ?? null;
  }

  return {
    audit,

    async createUser(displayName: string, tokenLabel = "local"): Promise<{ userId: string; linkToken: string }> {
      const userId = newId("usr");
      const linkToken = newToken("plt");
      await db.insertInto("users").values({ id: userId, display_name: displayName, created_at: now(), email: null, password_hash: null }).execute();
      await db.insertInto("link_tokens").values({ token_hash: hashToken(linkToken), user_id: userId, label: tokenLabel, created_at: now() }).execute();
      await audit({ userId, actor: "system", action: "user.created", outcome: "ok" });
      return { userId, linkToken };
    },

    async userForLinkToken(token: string): Promise<string | null> {
      const row = await db.selectFrom("link_tokens").select(["user_id"]).where("token_hash", "=", hashToken(token)).executeTakeFirst();
      return row?.user_id ?? null;
    },

    async registerInstance(userId: string, name: string): Promise<string> {
      const id = newId("inst");
      await db.insertInto("instances").values({ id, user_id: userId, name, created_at: now(), last_seen_at: now() }).execute();
      await audit({ userId, actor: "user", action: "instance.registered", outcome: "ok", detail: name });
      return id;
    },

    async instanceExists(userId: string, instanceId: string): Promise<boolean> {
      const row = await db.selectFrom("instances").select(["id"]).where("id", "=", instanceId).where("user_id", "=", userId).executeTakeFirst();
      return row !== undefined;
    },

    /** Agent API: the value when a live grant exists, else a (new or reused) pending request. */
    async resolve(userId: string, body: AgentResolveBody): Promise<AgentResolveResult> {
      limitAgent(`${body.instanceId}:${body.agentClientId}`);
      const variable = normalizeVariable(body.variable);
      if (variable.length === 0) throw new ServiceError(400, "invalid_request", `Variable ${JSON.stringify(body.variable)} has no usable characters.`);
      await ownedInstance(userId, body.instanceId);
      const agent = await upsertAgent(userId, body.agentClientId, body.agentName ?? null);
      for (let attempt = 0; attempt < 3; attempt++) {
        const grant = await findLiveGrant(agent, variable, body.instanceId, body.process);
        if (grant === null) break;
        const delivered = await deliver(grant, agent, "link");
        if (delivered !== null) return { status: "granted", value: delivered.value, grantId: grant.id, expiresAt: delivered.expiresAt, variable, reusable: grant.scope !== "once" };
      }
      const request = await createOrReuseRequest(userId, body.instanceId, agent, variable, body.reason ?? null, body.process ?? null);
      return { status: "pending", requestId: request.id, expiresAt: request.expires_at };
    },

    /** Agent API: waits until the request is decided or expires, or `timeoutMs` passes. */
    async waitForRequest(userId: string, identity: { instanceId: string; agentClientId: string }, requestId: string, timeoutMs: number, signal?: AbortSignal): Promise<RequestRow["status"]> {
      await ownedInstance(userId, identity.instanceId);
      const read = async (): Promise<RequestRow> => {
        const row = await db.selectFrom("requests").selectAll().where("id", "=", requestId).where("user_id", "=", userId).executeTakeFirst();
        if (row === undefined) throw new ServiceError(404, "request_not_found", `No request ${requestId}.`);
        return row;
      };
      let wake: () => void = () => undefined;
      const woken = new Promise<void>((resolve) => {
        wake = resolve;
      });
      const unsubscribe = bus.subscribe((e) => {
        if (e.type === "request.decided" && e.id === requestId) wake();
      });
      try {
        const row = await read();
        if (row.status !== "pending") return row.status;
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, Math.max(0, Math.min(timeoutMs, row.expires_at - now() + 50)));
        });
        // The caller may have gone while the reads above ran: an abort that already happened fires no event.
        const aborted = new Promise<void>((resolve) => {
          if (signal?.aborted) resolve();
          else signal?.addEventListener("abort", () => resolve(), { once: true });
        });
        await Promise.race([woken, timedOut, aborted]);
        clearTimeout(timer);
        const after = await read();
        if (after.status === "pending" && after.expires_at <= now()) return "expired";
        return after.status;
      } finally {
        unsubscribe();
      }
    },

    async approve(userId: string, requestId: string, body: ApproveBody): Promise<GrantView> {
      const request = await pendingRequestFor(userId, requestId);
      const secret = await findSecretByName(userId, body.secretName ?? request.variable);
      if (secret === null) {
        throw new ServiceError(409, "secret_not_found", `There is no secret named ${body.secretName ?? request.variable.toUpperCase()} yet. Add it (piper-link secrets set ${body.secretName ?? request.variable.toUpperCase()}) and approve again.`);
      }
      const process = request.process === null ? null : (JSON.parse(request.process) as PeerProcess);
      if (body.scope.kind === "process" && (process === null || process.startTime === null)) {
        throw new ServiceError(400, "invalid_request", "This request carries no process identity, so it cannot be approved for the life of a process.");
      }
      const t = now();
      const grant: GrantRow = {
        id: newId("gr"),
        user_id: userId,
        agent_id: request.agent_id,
        variable: request.variable,
        secret_id: secret.id,
        scope: body.scope.kind === "duration" ? "until" : body.scope.kind,
        expires_at: body.scope.kind === "duration" ? t + body.scope.durationMs : null,
        instance_id: request.instance_id,
        process_pid: body.scope.kind === "process" && process !== null ? process.pid : null,
        process_start_time: body.scope.kind === "process" && process !== null ? process.startTime : null,
        request_id: request.id,
        created_at: t,
        last_used_at: null,
        ended_at: null,
        end_reason: null,
      };
      const decided = await db.transaction().execute(async (trx) => {
        const r = await trx.updateTable("requests").set({ status: "approved", decided_at: t, grant_id: grant.id }).where("id", "=", request.id).where("status", "=", "pending").executeTakeFirst();
        if (Number(r.numUpdatedRows) !== 1) return false;
        await trx.insertInto("grants").values(grant).execute();
        return true;
      });
      if (!decided) throw new ServiceError(409, "request_not_pending", `Request ${requestId} was decided meanwhile.`);
      const agent = await db.selectFrom("agents").selectAll().where("id", "=", request.agent_id).executeTakeFirstOrThrow();
      await audit({ userId, actor: "user", action: "request.approved", outcome: grant.scope, agentClientId: agent.client_id, variable: request.variable, requestId: request.id, grantId: grant.id, secretName: secret.name });
      await publish({ type: "request.decided", userId, id: request.id, status: "approved" });
      await publish({ type: "grant.changed", userId, id: grant.id, status: "created" });
      const [view] = await grantViews([grant]);
      return view as GrantView;
    },

    async deny(userId: string, requestId: string): Promise<RequestView> {
      const request = await pendingRequestFor(userId, requestId);
      const r = await db.updateTable("requests").set({ status: "denied", decided_at: now() }).where("id", "=", request.id).where("status", "=", "pending").executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) throw new ServiceError(409, "request_not_pending", `Request ${requestId} was decided meanwhile.`);
      const view = await requestView({ ...request, status: "denied", decided_at: now() });
      await audit({ userId, actor: "user", action: "request.denied", outcome: "denied", agentClientId: view.agentClientId, variable: request.variable, requestId: request.id });
      await publish({ type: "request.decided", userId, id: request.id, status: "denied" });
      return view;
    },

    /** Records deliveries the Link made from its cache: audit entries and last-used times. */
    /**
     * Deliveries the Link answered from memory. Under load that is thousands a second, so they are
     * recorded per grant and process: one audit event saying how many, and the grant's last use.
     */
    async recordUsage(userId: string, report: UsageReport): Promise<number> {
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
      let recorded = 0;
      for (const use of groups.values()) {
        const grant = await db.selectFrom("grants").selectAll().where("id", "=", use.grantId).where("user_id", "=", userId).executeTakeFirst();
        if (grant === undefined) continue;
        const secret = await db.selectFrom("secrets").select(["name"]).where("id", "=", grant.secret_id).executeTakeFirst();
        await db.updateTable("grants").set({ last_used_at: use.last }).where("id", "=", grant.id).where((eb) => eb.or([eb("last_used_at", "is", null), eb("last_used_at", "<", use.last)])).execute();
        const where = use.pid === null ? "link-cache" : `link-cache pid ${use.pid}`;
        const detail = use.count === 1 ? where : `${where}, ${use.count} deliveries ${new Date(use.first).toISOString()} – ${new Date(use.last).toISOString()}`;
        await audit({ userId, actor: `agent:${use.agentClientId}`, action: "secret.delivered", outcome: "ok", agentClientId: use.agentClientId, variable: grant.variable, grantId: grant.id, secretName: secret?.name ?? null, detail });
        recorded += use.count;
      }
      return recorded;
    },

    async listRequests(userId: string, status: RequestRow["status"] | "all" = "pending"): Promise<RequestView[]> {
      let q = db.selectFrom("requests").selectAll().where("user_id", "=", userId);
      if (status !== "all") q = q.where("status", "=", status);
      if (status === "pending") q = q.where("expires_at", ">", now());
      const rows = await q.orderBy("created_at", "desc").limit(500).execute();
      return Promise.all(rows.map(requestView));
    },

    async listGrants(userId: string, includeEnded = false): Promise<GrantView[]> {
      let q = db.selectFrom("grants").selectAll().where("user_id", "=", userId);
      if (!includeEnded) q = q.where("ended_at", "is", null);
      return grantViews(await q.orderBy("created_at", "desc").limit(1000).execute());
    },

    async revokeGrant(userId: string, grantId: string, reason = "revoked"): Promise<GrantView> {
      const grant = await db.selectFrom("grants").selectAll().where("id", "=", grantId).where("user_id", "=", userId).executeTakeFirst();
      if (grant === undefined) throw new ServiceError(404, "grant_not_found", `No grant ${grantId}.`);
      if (grant.ended_at === null) await endGrant(grant, reason, reason === "revoked" ? "user" : "link");
      const row = await db.selectFrom("grants").selectAll().where("id", "=", grantId).executeTakeFirstOrThrow();
      const [view] = await grantViews([row]);
      return view as GrantView;
    },

    async listSecrets(userId: string): Promise<SecretView[]> {
      const rows = await db.selectFrom("secrets").select(["id", "name", "created_at", "updated_at"]).where("user_id", "=", userId).orderBy("name").execute();
      return rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at, updatedAt: r.updated_at }));
    },

    async setSecret(userId: string, name: string, value: string): Promise<SecretView> {
      const t = now();
      const existing = await findSecretByName(userId, name);
      const id = existing?.id ?? newId("sec");
      const { ciphertext, keyId } = encryptSecret(keys, `${userId}:${id}`, value);
      if (existing === null) {
        await db.insertInto("secrets").values({ id, user_id: userId, name, ciphertext, key_id: keyId, created_at: t, updated_at: t }).execute();
      } else {
        await db.updateTable("secrets").set({ ciphertext, key_id: keyId, updated_at: t }).where("id", "=", id).execute();
      }
      await audit({ userId, actor: "user", action: existing === null ? "secret.created" : "secret.updated", outcome: "ok", secretName: existing?.name ?? name });
      await publish({ type: "secret.changed", userId, id, status: existing === null ? "created" : "updated" });
      const row = await db.selectFrom("secrets").select(["id", "name", "created_at", "updated_at"]).where("id", "=", id).executeTakeFirstOrThrow();
      return { id: row.id, name: row.name, createdAt: row.created_at, updatedAt: row.updated_at };
    },

    async deleteSecret(userId: string, name: string): Promise<void> {
      const secret = await findSecretByName(userId, name);
      if (secret === null) throw new ServiceError(404, "secret_not_found", `No secret named ${name}.`);
      const grants = await db.selectFrom("grants").selectAll().where("secret_id", "=", secret.id).where("ended_at", "is", null).execute();
      for (const g of grants) await endGrant(g, "secret_deleted", "user");
      await db.deleteFrom("secrets").where("id", "=", secret.id).execute();
      await audit({ userId, actor: "user", action: "secret.deleted", outcome: "ok", secretName: secret.name });
      await publish({ type: "secret.changed", userId, id: secret.id, status: "deleted" });
    },

    async listAudit(userId: string, opts: { limit: number; before?: string | undefined; agent?: string | undefined; variable?: string | undefined }): Promise<AuditPage> {
      let q = db.selectFrom("audit_events").selectAll().where("user_id", "=", userId);
      if (opts.before !== undefined) q = q.where("id", "<", opts.before);
      if (opts.agent !== undefined) q = q.where("agent_client_id", "=", opts.agent);
      if (opts.variable !== undefined) q = q.where("variable", "=", normalizeVariable(opts.variable));
      const rows = await q.orderBy("id", "desc").limit(opts.limit + 1).execute();
      const page = rows.slice(0, opts.limit);
      return {
        events: page.map((r) => ({
          id: r.id,
          at: r.at,
          actor: r.actor,
          action: r.action,
          agentClientId: r.agent_client_id,
          variable: r.variable,
          requestId: r.request_id,
          grantId: r.grant_id,
          secretName: r.secret_name,
          outcome: r.outcome,
        })),
        nextCursor: rows.length > opts.limit ? (page[page.length - 1]?.id ?? null) : null,
      };
    },

    /** Marks pending requests past their expiry as expired; run periodically by each process. */
    async expireRequests(): Promise<number> {
      const t = now();
      const rows = await db.updateTable("requests").set({ status: "expired", decided_at: t }).where("status", "=", "pending").where("expires_at", "<=", t).returning(["id", "user_id", "variable"]).execute();
      for (const r of rows) {
        await audit({ userId: r.user_id, actor: "system", action: "request.expired", outcome: "expired", variable: r.variable, requestId: r.id });
        await publish({ type: "request.decided", userId: r.user_id, id: r.id, status: "expired" });
      }
      return rows.length;
    },

    // --- pyper-sdk compatibility (DESIGN.md section 5) ---

    async pyperResolveMapping(body: { agentClientId: string; instanceId: string; variableName: string }): Promise<{ credentialId: string }> {
      limitAgent(`${body.instanceId}:${body.agentClientId}`);
      const variable = normalizeVariable(body.variableName);
      if (variable.length === 0) throw new ServiceError(400, "invalid_request", "variableName has no usable characters.");
      const userId = await instanceOwner(body.instanceId);
      const agent = await upsertAgent(userId, body.agentClientId, null);
      const grant = await findLiveGrant(agent, variable, body.instanceId, null);
      if (grant !== null) return { credentialId: grant.id };
      const ended = await db.selectFrom("grants").select(["id"]).where("agent_id", "=", agent.id).where("variable", "=", variable).where("end_reason", "=", "revoked").executeTakeFirst();
      const request = await createOrReuseRequest(userId, body.instanceId, agent, variable, null, null);
      if (ended !== undefined) {
        throw new ServiceError(403, "permission_denied", `The grant for '${variable}' was revoked. Approve request ${request.id} in Piper Link to restore access.`);
      }
      throw new ServiceError(404, "mapping_not_found", `No grant for '${variable}' yet. Approve request ${request.id} in Piper Link, then retry.`);
    },

    async pyperScopedCredentials(body: { agentClientId: string; instanceId: string; credentialIds: string[] }): Promise<{ access_token: string; granted_credential_ids: string[]; expires_in: number }> {
      limitAgent(`${body.instanceId}:${body.agentClientId}`);
      const userId = await instanceOwner(body.instanceId);
      const agent = await upsertAgent(userId, body.agentClientId, null);
      const granted: string[] = [];
      for (const id of body.credentialIds) {
        const g = await db.selectFrom("grants").selectAll().where("id", "=", id).where("agent_id", "=", agent.id).where("ended_at", "is", null).executeTakeFirst();
        if (g !== undefined && (g.scope !== "until" || (g.expires_at ?? 0) > now()) && g.scope !== "process") granted.push(g.id);
      }
      if (granted.length === 0) throw new ServiceError(403, "permission_denied", "None of these credentials is granted to this agent.");
      const token = newToken("pst");
      await db.insertInto("scoped_tokens").values({ token_hash: hashToken(token), user_id: userId, agent_id: agent.id, instance_id: body.instanceId, grant_ids: JSON.stringify(granted), expires_at: now() + scopedTtlMs }).execute();
      await db.deleteFrom("scoped_tokens").where("expires_at", "<", now()).execute();
      return { access_token: token, granted_credential_ids: granted, expires_in: Math.floor(scopedTtlMs / 1000) };
    },

    /**
     * Raw exchange. pyper-sdk sends no token here, so the exchange requires that a scoped
     * credential bound to this grant was issued to this agent and instance and is still valid
     * (and, when a bearer token is sent, that it is that credential).
     */
    async pyperExchange(body: { agentClientId: string; instanceId: string; piperCredentialId: string }, bearer: string | null): Promise<{ secret_value: string }> {
      limitAgent(`${body.instanceId}:${body.agentClientId}`);
      const userId = await instanceOwner(body.instanceId);
      const agent = await upsertAgent(userId, body.agentClientId, null);
      let tokens = db.selectFrom("scoped_tokens").selectAll().where("agent_id", "=", agent.id).where("instance_id", "=", body.instanceId).where("expires_at", ">", now());
      if (bearer !== null) tokens = tokens.where("token_hash", "=", hashToken(bearer));
      const bound = (await tokens.execute()).some((t) => (JSON.parse(t.grant_ids) as string[]).includes(body.piperCredentialId));
      if (!bound) throw new ServiceError(401, "invalid_token", "No valid scoped credential covers this credential ID; request scoped credentials first.");
      const grant = await db.selectFrom("grants").selectAll().where("id", "=", body.piperCredentialId).where("agent_id", "=", agent.id).where("ended_at", "is", null).executeTakeFirst();
      if (grant === undefined || (grant.scope === "until" && (grant.expires_at ?? 0) <= now())) {
        throw new ServiceError(403, "permission_denied", "This credential is no longer granted to this agent.");
      }
      const delivered = await deliver(grant, agent, "pyper");
      if (delivered === null) throw new ServiceError(403, "permission_denied", "This credential is no longer granted to this agent.");
      return { secret_value: delivered.value };
    },
  };
}
