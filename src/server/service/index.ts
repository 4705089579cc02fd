/**
 * The authority's rules, independent of HTTP, composed from one part per aggregate: audit,
 * grants, secrets, instances and agents, requests (and waits, expiry), usage, pyper compatibility,
 * and the in-process rate limits. Every change publishes an event so waiting agents and the
 * Link's event stream see it, in this process or (PostgreSQL) any other. This file only wires the
 * parts and keeps the method names the HTTP layer calls.
 */
import type { Kysely } from "kysely";
import { tokenHasher, type DataKeys } from "../crypto.js";
import type { Database } from "../db.js";
import type { EventBus } from "../events.js";
import { createAuditLog } from "./audit.js";
import type { ServiceDeps } from "./deps.js";
import { createGrants } from "./grants.js";
import { createInstancesAgents } from "./instances-agents.js";
import { createLimits } from "./limits.js";
import { createPyper } from "./pyper.js";
import { createRequests } from "./requests.js";
import { createSecrets } from "./secrets.js";
import { createUsage } from "./usage.js";
import { createRowMacs, rotateRows, sealRows } from "./row-macs.js";

export { ServiceError } from "./errors.js";
export type { InstanceRevoked } from "./instances-agents.js";
export type { RequestStatus } from "./requests.js";
export { GUESS_CODES } from "./limits.js";

export interface ServiceOptions {
  db: Kysely<Database>;
  keys: DataKeys;
  bus: EventBus;
  /** Clock, epoch ms (default Date.now). */
  now?: () => number;
  /** How long a pending request waits for the person (default 10 minutes). */
  requestTtlMs?: number;
  /** Lifetime of pyper-sdk scoped credentials (default 5 minutes). */
  scopedTokenTtlMs?: number;
  /** Per-agent (instance + client ID) sustained calls per second (default 30). */
  agentRatePerSecond?: number;
  /** Per-agent burst (default 60). */
  agentRateBurst?: number;
  /** Failed guesses (unknown instance, device code, token...) one source address may make at once (default 30). */
  guessBurst?: number;
  /** Failed guesses per second a source earns back (default 0.5). */
  guessPerSecond?: number;
  /** Where rows refused for a missing or wrong MAC are reported (default: stderr, one JSON line). */
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** The default report of a tampered row: one JSON line on stderr, as `authority serve` logs. */
function stderrLog(msg: string, fields?: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ msg, ...fields })}\n`);
}

export type AuthorityService = ReturnType<typeof createService>;

/** Composes the service parts over one database, key set, event bus and clock. */
export function createService(options: ServiceOptions) {
  const log = options.log ?? stderrLog;
  const tamper = (table: string, id: string): void =>
    log("tampering: a row without a valid MAC was refused (treated as absent)", { table, id });
  const macs = createRowMacs(options.keys, tamper);
  const deps: ServiceDeps = {
    db: options.db,
    keys: options.keys,
    bus: options.bus,
    now: options.now ?? Date.now,
    macs,
    tokens: tokenHasher(options.keys),
  };
  const limits = createLimits(
    {
      ...(options.agentRatePerSecond !== undefined ? { agentRatePerSecond: options.agentRatePerSecond } : {}),
      ...(options.agentRateBurst !== undefined ? { agentRateBurst: options.agentRateBurst } : {}),
      ...(options.guessBurst !== undefined ? { guessBurst: options.guessBurst } : {}),
      ...(options.guessPerSecond !== undefined ? { guessPerSecond: options.guessPerSecond } : {}),
    },
    deps.now,
  );
  const audit = createAuditLog(deps);
  const grants = createGrants(deps, audit);
  const secrets = createSecrets(deps, audit, grants);
  const instances = createInstancesAgents(deps, audit, grants);
  const requests = createRequests(
    deps,
    { audit, grants, secrets, instances, limits },
    options.requestTtlMs ?? 10 * 60_000,
  );
  const usage = createUsage(deps, audit);
  const pyper = createPyper(deps, { grants, instances, requests, limits }, options.scopedTokenTtlMs ?? 5 * 60_000);

  return {
    /**
     * Run once at start, before serving: MACs the rows of a database that was never sealed (its
     * grants become legacy) unless `adopt` is false (see row-macs.ts `sealRows`). Returns how many rows were adopted.
     */
    seal: (adopt: boolean) => sealRows(deps.db, options.keys, adopt, tamper),
    /** Moves everything to the current data key and replaces every credential (row-macs.ts `rotateRows`). */
    rotate: () => rotateRows(deps.db, options.keys, deps.tokens, deps.now(), tamper),
    audit: audit.record,
    /** Source-address limits for the agent and token endpoints (the HTTP layer calls them). */
    limits,

    createUser: instances.createUser,
    userForLinkToken: instances.userForLinkToken,
    registerInstance: instances.registerInstance,
    whoAmI: instances.whoAmI,
    instanceExists: instances.instanceExists,
    revokeInstance: instances.revokeInstance,
    /**
     * The account that owns a live instance (401 `invalid_instance` otherwise). Only for callers
     * that identify by instance ID alone; agent-facing routes should pass the bearer's account.
     */
    instanceOwner: instances.liveInstanceOwner,

    resolve: requests.resolve,
    waitForRequest: requests.waitForRequest,
    approve: requests.approve,
    deny: requests.deny,
    requesterGone: requests.requesterGone,
    listRequests: (userId: string, status: Parameters<typeof requests.list>[1] = "pending") =>
      requests.list(userId, status),
    expireRequests: requests.expire,

    recordUsage: usage.record,

    listGrants: (userId: string, includeEnded = false) => grants.list(userId, includeEnded),
    listLegacyGrants: grants.listLegacy,
    keepLegacyGrants: grants.keepLegacy,
    revokeGrant: (userId: string, grantId: string, reason = "revoked") => grants.revoke(userId, grantId, reason),
    updateGrantPolicy: grants.updatePolicy,

    listSecrets: secrets.list,
    setSecret: secrets.set,
    setSecretHosts: secrets.setHosts,
    deleteSecret: secrets.delete,

    listAudit: audit.list,

    pyperResolveMapping: pyper.resolveMapping,
    pyperScopedCredentials: pyper.scopedCredentials,
    pyperExchange: pyper.exchange,
  };
}
