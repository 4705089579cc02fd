/**
 * What the Link's pyper-sdk endpoints do (issue 13 item 9, DESIGN.md section 5): each call is
 * answered by the authority's authenticated agent API, called with the Link's own credential and
 * the caller's program identity from the OS, so a pyper-sdk agent's request names its program and
 * its grants bind like any other agent's. pyper-sdk 0.7 sends no agent credential, so the instance
 * ID it sends must be this Link's current one (another, or none after sign-out: 401
 * `invalid_instance`).
 *
 * - resolve mapping: a live grant -> its grant ID as the credential ID, remembered in memory for the
 *   calling process; none -> 404 `mapping_not_found` (the authority created a pending request that
 *   names the program).
 * - scoped credentials: a short-lived token the Link issues and keeps in memory, bound to the
 *   credential IDs this process resolved and to the process itself.
 * - raw exchange: needs such a token (pyper-sdk sends none, so one issued to this process for this
 *   credential suffices); the value is resolved again at the authority with the identity, so
 *   revocation, bindings and policy apply on every exchange. A grant the authority counts per use
 *   (`once`, or with policy limits) was already used by the resolve mapping: its value is held for
 *   that process's exchange for up to a minute instead of being used up twice.
 *
 * Nothing here survives a restart: pyper-sdk runs all three calls within one `get_secret`.
 */
import { createHash, randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { AgentResolveResult } from "../../../shared/authority.js";
import { LinkError } from "../../../shared/errors.js";
import type { PeerProcess } from "../../../shared/process.js";
import { VariableSchema } from "../../../shared/protocol.js";
import type {
  PyperErrorCode,
  PyperExchangeBody,
  PyperExchangeResult,
  PyperMappingResult,
  PyperResolveBody,
  PyperScopedBody,
  PyperScopedResult,
} from "../../../shared/pyper.js";
import { AuthorityCallError, type AuthorityClient } from "../authority/authority-client.js";

/** A refusal with the HTTP status and `{error, error_description}` pyper-sdk expects. */
export class PyperFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: PyperErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "PyperFailure";
  }
}

export interface PyperHandlerDeps {
  now(): number;
  log: Logger;
  /** The authority client (null: none configured). */
  authority(): AuthorityClient | null;
  /** This Link's current instance ID (null: nobody signed in). */
  instanceId(): string | null;
  /** Lifetime of a scoped token, in ms (default 5 minutes). */
  scopedTtlMs?: number;
}

/** How long a resolved credential ID stays usable by the process that resolved it (ms). */
const CREDENTIAL_TTL_MS = 10 * 60_000;
/** How long the value of a per-use grant waits for the exchange that follows its resolve (ms). */
const HELD_VALUE_TTL_MS = 60_000;
const DEFAULT_SCOPED_TTL_MS = 5 * 60_000;
/** Entries kept at most per table; the oldest go first (one process flooding cannot grow memory without end). */
const MAX_ENTRIES = 10_000;

interface CredentialRecord {
  grantId: string;
  variable: string;
  agentClientId: string;
  instanceId: string;
  expiresAt: number;
  /** The value of a per-use grant, delivered by the resolve, waiting for this process's exchange. */
  held: { value: string; until: number } | null;
}

interface ScopedToken {
  grantIds: ReadonlySet<string>;
  process: string;
  agentClientId: string;
  instanceId: string;
  expiresAt: number;
}

/**
 * Names one process: pid + start time (a reused pid is another process). Callers whose identity the
 * OS did not give (not Linux) share one key: nothing better is known about them.
 */
function processKey(identity: PeerProcess | null): string {
  return identity === null ? "unknown" : `${identity.pid}:${identity.startTime ?? "?"}`;
}

function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("base64url");
}

/** Drops expired entries, then the oldest while the map is full. */
function prune<V extends { expiresAt: number }>(map: Map<string, V>, now: number): void {
  for (const [key, value] of map) if (value.expiresAt <= now) map.delete(key);
  for (const key of map.keys()) {
    if (map.size < MAX_ENTRIES) break;
    map.delete(key);
  }
}

/** The authority's error, in pyper-sdk's words (401 means "context problem" to it, 403 "forbidden"). */
function fromAuthority(err: unknown): PyperFailure {
  if (err instanceof AuthorityCallError) {
    if (err.status === 401)
      return new PyperFailure(
        401,
        "invalid_instance",
        "Piper Link is not signed in to its authority any more. Sign in again (`piper-link login`), then retry.",
      );
    if (err.status === 429) return new PyperFailure(429, "rate_limited", err.message);
    if (err.status === 400 || err.status === 413) return new PyperFailure(400, "invalid_request", err.message);
    if (err.status === 403) return new PyperFailure(403, "permission_denied", err.message);
  }
  if (err instanceof LinkError && err.code === "not_logged_in")
    return new PyperFailure(401, "invalid_instance", err.message);
  const message = err instanceof Error ? err.message : String(err);
  return new PyperFailure(503, "authority_unavailable", `Piper Link could not reach its authority: ${message}`);
}

export type PyperHandlers = ReturnType<typeof createPyperHandlers>;

/** The three pyper-sdk operations of one Link; `clear()` forgets every credential and token (sign-out). */
export function createPyperHandlers(deps: PyperHandlerDeps) {
  const scopedTtlMs = deps.scopedTtlMs ?? DEFAULT_SCOPED_TTL_MS;
  /** `process \0 grantId` -> what that process resolved. */
  const credentials = new Map<string, CredentialRecord>();
  /** sha256(token) -> the token's bindings. */
  const tokens = new Map<string, ScopedToken>();

  /** The body's instance must be this Link's current one; 401 `invalid_instance` otherwise. */
  function requireOwnInstance(instanceId: string): void {
    const current = deps.instanceId();
    if (current === null)
      throw new PyperFailure(
        401,
        "invalid_instance",
        "Piper Link is running but nobody is signed in. Open Piper Link and sign in.",
      );
    if (current !== instanceId)
      throw new PyperFailure(
        401,
        "invalid_instance",
        "This instance ID is not the one this Piper Link serves (it was signed out, or it belongs to another machine). Read the current one from the Link's /piper-link-context.",
      );
  }

  async function resolveAtAuthority(
    agentClientId: string,
    variable: string,
    identity: PeerProcess | null,
    instanceId: string,
  ): Promise<AgentResolveResult> {
    const client = deps.authority();
    if (client === null)
      throw new PyperFailure(503, "authority_unavailable", "This Piper Link has no authority configured.");
    if (!VariableSchema.safeParse(variable).success)
      throw new PyperFailure(400, "invalid_request", "The variable name is not valid.");
    try {
      // pyper-sdk never waits for an answer: it raises with a grant link and the script ends.
      return await client.resolve({ instanceId, agentClientId, variable, process: identity, requesterWaits: false });
    } catch (err) {
      throw fromAuthority(err);
    }
  }

  return {
    /**
     * `{agentClientId, instanceId, variableName}` -> `{credentialId}` (the grant's ID). Throws
     * PyperFailure: 404 `mapping_not_found` when no grant serves this program (a pending request
     * naming it now waits in Piper Link), 401 `invalid_instance`, 400, 429, 503.
     */
    async resolveMapping(body: PyperResolveBody, identity: PeerProcess | null): Promise<PyperMappingResult> {
      requireOwnInstance(body.instanceId);
      const result = await resolveAtAuthority(body.agentClientId, body.variableName, identity, body.instanceId);
      if (result.status === "pending") {
        throw new PyperFailure(
          404,
          "mapping_not_found",
          `No grant for '${body.variableName}' yet. Approve request ${result.requestId} in Piper Link (it names this program), then retry.`,
        );
      }
      const now = deps.now();
      prune(credentials, now);
      credentials.set(`${processKey(identity)}\u0000${result.grantId}`, {
        grantId: result.grantId,
        variable: result.variable,
        agentClientId: body.agentClientId,
        instanceId: body.instanceId,
        expiresAt: now + CREDENTIAL_TTL_MS,
        held: result.reusable ? null : { value: result.value, until: now + HELD_VALUE_TTL_MS },
      });
      deps.log.info(
        { clientId: body.agentClientId, grantId: result.grantId, pid: identity?.pid ?? null },
        "pyper mapping resolved",
      );
      return { credentialId: result.grantId };
    },

    /**
     * `{agentClientId, instanceId, credentialIds}` -> a token for those of the IDs this process
     * resolved with this client ID (in the order asked, without repeats); 403 `permission_denied`
     * when none, 401 `invalid_instance`.
     */
    scopedCredentials(body: PyperScopedBody, identity: PeerProcess | null): PyperScopedResult {
      requireOwnInstance(body.instanceId);
      const now = deps.now();
      const proc = processKey(identity);
      const granted = [...new Set(body.credentialIds)].filter((id) => {
        const record = credentials.get(`${proc}\u0000${id}`);
        return (
          record !== undefined &&
          record.expiresAt > now &&
          record.agentClientId === body.agentClientId &&
          record.instanceId === body.instanceId
        );
      });
      if (granted.length === 0)
        throw new PyperFailure(
          403,
          "permission_denied",
          "None of these credentials was resolved by this program for this client ID; call resolve mapping first.",
        );
      prune(tokens, now);
      const token = `pst_${randomBytes(32).toString("base64url")}`;
      tokens.set(hashToken(token), {
        grantIds: new Set(granted),
        process: proc,
        agentClientId: body.agentClientId,
        instanceId: body.instanceId,
        expiresAt: now + scopedTtlMs,
      });
      return { access_token: token, granted_credential_ids: granted, expires_in: Math.floor(scopedTtlMs / 1000) };
    },

    /**
     * `{agentClientId, instanceId, piperCredentialId}` -> `{secret_value}`. `bearer`, when the agent
     * sends one, must be the scoped token; without it a live token issued to this process covering
     * the credential suffices. 401 `invalid_token` without such a token; 403 `permission_denied`
     * when the grant ended (revoked, expired, or a binding no longer matches: a new request then
     * waits in Piper Link); 401 `invalid_instance`.
     */
    async exchange(
      body: PyperExchangeBody,
      identity: PeerProcess | null,
      bearer: string | null,
    ): Promise<PyperExchangeResult> {
      requireOwnInstance(body.instanceId);
      const now = deps.now();
      const proc = processKey(identity);
      const covers = (t: ScopedToken | undefined): boolean =>
        t !== undefined &&
        t.expiresAt > now &&
        t.process === proc &&
        t.agentClientId === body.agentClientId &&
        t.instanceId === body.instanceId &&
        t.grantIds.has(body.piperCredentialId);
      const bound = bearer !== null ? covers(tokens.get(hashToken(bearer))) : [...tokens.values()].some(covers);
      const key = `${proc}\u0000${body.piperCredentialId}`;
      const record = credentials.get(key);
      if (!bound || record === undefined || record.expiresAt <= now) {
        throw new PyperFailure(
          401,
          "invalid_token",
          "No valid scoped credential of this program covers this credential ID; request scoped credentials first.",
        );
      }
      if (record.held !== null) {
        const held = record.held;
        record.held = null;
        if (held.until > now) return { secret_value: held.value };
      }
      const result = await resolveAtAuthority(body.agentClientId, record.variable, identity, body.instanceId);
      if (result.status === "granted" && result.grantId === record.grantId) return { secret_value: result.value };
      credentials.delete(key);
      const next =
        result.status === "pending"
          ? ` Approve request ${result.requestId} in Piper Link, then retry.`
          : " Resolve the variable again.";
      throw new PyperFailure(403, "permission_denied", `This credential is no longer granted to this program.${next}`);
    },

    /** Forgets every resolved credential and issued token (sign-out, account switch, stop). */
    clear(): void {
      credentials.clear();
      tokens.clear();
    },
  };
}
