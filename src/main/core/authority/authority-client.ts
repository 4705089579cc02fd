/**
 * The Link's one way to the authority (embedded or remote), built on undici: every call is
 * `call(route, {params, query, body})` over the shared route table (`shared/authority-routes.ts`),
 * which fills the path, encodes the query and body, adds the bearer where the route needs it, and
 * validates the answer with the route's result schema. TLS trust is either the embedded authority's
 * pinned certificate fingerprint (checked on every new connection) or the system / configured CA.
 *
 * Two connection pools: long-polls (`/wait`) have their own, so a crowd of agents waiting for
 * approval never holds the sockets a granted resolve or a control call needs (issue 16 item 5), and
 * waits per agent are capped. Errors become LinkErrors with stable codes (`authority_unavailable`,
 * retryable, when the authority cannot be reached); reachability is reported to whoever follows the
 * event stream, so the Link's status says "unreachable" as soon as calls fail.
 */
import { createHmac, randomBytes } from "node:crypto";
import { TLSSocket } from "node:tls";
import { Agent, buildConnector, request, type Dispatcher } from "undici";
import type {
  AgentResolveBody,
  ApproveBody,
  AuthorityEvent,
  DeviceAuthorization,
  SecretHosts,
  TokenResponse,
  UsageReport,
} from "../../../shared/authority.js";
import type { GrantPolicy } from "../../../shared/grant-terms.js";
import { OAuthErrorSchema } from "../../../shared/authority.js";
import {
  AuthorityRoutes,
  fillPath,
  type GrantEndReason,
  type AuthorityCallInput,
  type AuthorityResult,
  type AuthorityRoute,
  type AuthorityRouteName,
  type TokenRequest,
} from "../../../shared/authority-routes.js";
import { authorityPresenceAction } from "../../../shared/authority-presence.js";
import { ErrorCodeSchema, LinkError, NOT_SIGNED_IN_MESSAGE, type ErrorCode } from "../../../shared/errors.js";
import { presenceMessage, type AuthorityPresence } from "../../../shared/presence.js";
import { followEvents, type OpenedStream } from "./event-stream.js";
import { AGENT_DEFAULTS } from "../../../shared/defaults.js";

export interface AuthorityClientOptions {
  url: string;
  /** SHA-256 fingerprint (`AA:BB:…`) the server certificate must have (embedded authority). */
  pin?: string | null;
  /** Extra CA certificates (PEM) for a remote authority with a private CA. */
  ca?: string | null;
  credentials: Credentials;
  /** Where skipped stream events and dropped connections are reported (default: nowhere). */
  log?: (msg: string, fields: Record<string, unknown>) => void;
  /** Waits in flight per agent (client ID + instance) before `rate_limited` (default 20). */
  maxWaitsPerAgent?: number;
  /** Sockets in the pool for everything but waits (default 64). */
  connections?: number;
}

/** Where the bearer token for Link API calls comes from (an OAuth session, or a provisioned Link token). */
export interface Credentials {
  bearer(): Promise<string | null>;
  /** The authority refused this token (401): forget it, so the next `bearer()` refreshes. */
  rejected(token: string): void;
  /** Why there is no bearer, when the credentials know better than "nobody signed in" (e.g. the sign-in was revoked). */
  readonly error?: string | null;
}

/** A failed authority call, with the authority's own error code (OAuth clients need it: `authorization_pending`, `invalid_grant`…). */
export class AuthorityCallError extends LinkError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly authorityCode: string,
    readonly status: number,
  ) {
    super(code, message, { retryable: status >= 500 || status === 429 });
  }
}

/** Authority error codes that are the Link's own codes too, passed through unchanged. */
const PASSED_THROUGH: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "secret_not_found",
  "requester_gone",
  "policy_violation",
  "destination_not_allowed",
  "presence_required",
  "presence_failed",
]);

/**
 * Makes the proof of presence a widening call carries, for the exact `action` string the client
 * computed (`authorityPresenceAction`). The Link supplies it: for the embedded authority,
 * `signLinkPresence` with that child's approval key once the person's own proof checked out; for
 * a team authority, `{kind: "password", password}` with the password the person typed.
 */
export type PresenceSigner = (action: string) => AuthorityPresence;

/**
 * The embedded authority's form of a proof of presence: HMAC-SHA256 under the child's approval
 * key (`EmbeddedAuthority.approvalKey()`, 32 bytes) of `presenceMessage(action, nonce, at)`, with
 * a fresh 16-byte nonce and `at` = `now` (epoch ms). Valid once, for `PRESENCE_MAC_TTL_MS`.
 */
export function signLinkPresence(approvalKey: Buffer, action: string, now: number = Date.now()): AuthorityPresence {
  const nonce = randomBytes(16).toString("base64url");
  const mac = createHmac("sha256", approvalKey)
    .update(presenceMessage(action, nonce, now), "utf8")
    .digest("base64url");
  return { kind: "link-mac", nonce, at: now, mac };
}

function codeFor(status: number, error: string): ErrorCode {
  const own = ErrorCodeSchema.safeParse(error);
  if (own.success && PASSED_THROUGH.has(own.data)) return own.data;
  if (status === 401) return error === "invalid_instance" ? "not_logged_in" : "unauthorized";
  if (status === 404) return "not_found";
  if (status === 409) return "conflict";
  if (status === 429) return "rate_limited";
  if (status === 400 || status === 413) return "bad_request";
  if (status === 403) return "denied";
  return "authority_unavailable";
}

/** Per-call options: an abort signal and a deadline for the whole answer (default 15 s). */
export interface CallOptions {
  signal?: AbortSignal | undefined;
  timeoutMs?: number | undefined;
}

/**
 * An undici connector that trusts exactly the certificate with SHA-256 fingerprint `pin`: the
 * embedded authority's certificate is self-signed, so trust is the fingerprint, not a CA chain.
 * Node skips `checkServerIdentity` when the chain itself fails, so the check runs here, after the
 * handshake, on every new connection (sessions are not cached, so none skips it).
 */
export function pinnedConnector(pin: string): buildConnector.connector {
  const connect = buildConnector({ rejectUnauthorized: false, maxCachedSessions: 0 });
  return (opts, callback) =>
    connect(opts, (...args) => {
      const [err, socket] = args;
      if (err !== null) return callback(err, null);
      const fingerprint = socket instanceof TLSSocket ? socket.getPeerCertificate().fingerprint256 : undefined;
      if (fingerprint === pin) return callback(null, socket);
      socket.destroy();
      callback(
        new Error(`authority certificate ${fingerprint ?? "(none)"} does not match the pinned fingerprint`),
        null,
      );
    });
}

export type AuthorityClient = ReturnType<typeof createAuthorityClient>;

/**
 * A client for the authority at `options.url`. Call `close()` when done: it ends both pools.
 * Named methods (`listGrants`, `approve`, …) are one-line shorthands over `call`, kept for the core's
 * existing callers.
 */
export function createAuthorityClient(options: AuthorityClientOptions) {
  const base = new URL(options.url);
  const secure = base.protocol === "https:";
  const connect = secure && options.pin ? pinnedConnector(options.pin) : options.ca ? { ca: options.ca } : undefined;
  // Idle sockets close after 4 s whatever the server's Keep-Alive hint (Fastify suggests 72 s): a
  // burst may open up to 64 connections, and they must not stay open (and hold descriptors) long after.
  const poolOptions = { keepAliveTimeout: 4_000, keepAliveMaxTimeout: 4_000, ...(connect ? { connect } : {}) };
  const shared = new Agent({ ...poolOptions, connections: options.connections ?? 64 });
  // Waits are idle most of their life: their own pool, bounded by the per-agent cap times the agents.
  const waits = new Agent({ ...poolOptions, connections: 4096 });
  const maxWaits = options.maxWaitsPerAgent ?? AGENT_DEFAULTS.maxWaitsPerAgent;
  const waitsPerAgent = new Map<string, number>();
  const log = options.log ?? (() => undefined);
  let reachability: ((connected: boolean, error: string | null) => void) | null = null;

  function unreachable(err: unknown, opts: CallOptions): LinkError {
    if (opts.signal?.aborted) return new LinkError("timeout", "The wait was cancelled.");
    const message = err instanceof Error ? err.message : String(err);
    reachability?.(false, message);
    return new LinkError(
      "authority_unavailable",
      `The authority at ${base.origin} is unreachable (${message}). Piper Link keeps retrying.`,
      { retryable: true, cause: err },
    );
  }

  /** One HTTP exchange for `route`; the bearer, if any, is already chosen. */
  async function exchange(
    route: AuthorityRoute,
    input: { params?: unknown; query?: unknown; body?: unknown },
    bearer: string | null,
    opts: CallOptions,
  ): Promise<unknown> {
    const url = new URL(fillPath(route.path, isRecord(input.params) ? input.params : undefined), base);
    if (isRecord(input.query))
      for (const [k, v] of Object.entries(input.query)) if (isScalar(v)) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: "application/json" };
    let body: string | null = null;
    if (input.body !== undefined) {
      if (route.encoding === "form") {
        headers["content-type"] = "application/x-www-form-urlencoded";
        const form = new URLSearchParams();
        if (isRecord(input.body))
          for (const [k, v] of Object.entries(input.body)) if (isScalar(v)) form.set(k, String(v));
        body = form.toString();
      } else {
        headers["content-type"] = "application/json";
        body = JSON.stringify(input.body);
      }
    }
    if (bearer !== null) headers["authorization"] = `Bearer ${bearer}`;
    const timeoutMs = opts.timeoutMs ?? 15_000;
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
    let res: Dispatcher.ResponseData;
    let text: string;
    try {
      res = await request(url, {
        method: route.method,
        headers,
        body,
        signal,
        dispatcher: route.longPoll ? waits : shared,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      text = await res.body.text();
    } catch (err) {
      throw unreachable(err, opts);
    }
    let json: unknown;
    try {
      json = text.length > 0 ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (res.statusCode >= 400) {
      // Any answer RFC 6749 section 5.2 allows: only `error` is required (issue 16 item 2).
      const err = OAuthErrorSchema.safeParse(json);
      const code = err.success ? err.data.error : `http_${res.statusCode}`;
      const message = err.success
        ? (err.data.error_description ?? `The authority answered ${err.data.error} (HTTP ${res.statusCode}).`)
        : `The authority answered HTTP ${res.statusCode}.`;
      throw new AuthorityCallError(codeFor(res.statusCode, code), message, code, res.statusCode);
    }
    return json;
  }

  /**
   * Calls route `name` of the authority's table with its params, query and body; resolves with the
   * route's validated result. Bearer routes take the token from `credentials` and retry once after
   * a refused (`invalid_token`) one. Rejects with `not_logged_in` when there is no credential, an
   * `AuthorityCallError` for an HTTP error answer, `authority_unavailable` (retryable) when the
   * authority cannot be reached or answers something off-contract, `timeout` when `signal` aborted.
   */
  // The typed signature callers see; the implementation below is written once for every route and
  // returns exactly what the route's own result schema produced, which is that type.
  function call<N extends AuthorityRouteName>(
    name: N,
    input: AuthorityCallInput<N>,
    opts?: CallOptions,
  ): Promise<AuthorityResult<N>>;
  async function call(
    name: AuthorityRouteName,
    parts: { params?: unknown; query?: unknown; body?: unknown },
    opts: CallOptions = {},
  ): Promise<unknown> {
    const route: AuthorityRoute = AuthorityRoutes[name];
    const validate = async (bearer: string | null): Promise<unknown> => {
      const json = await exchange(route, parts, bearer, opts);
      const parsed = route.result.safeParse(json);
      if (!parsed.success)
        throw new LinkError(
          "authority_unavailable",
          `The authority sent an unexpected answer to ${route.method} ${route.path}.`,
        );
      reachability?.(true, null);
      return parsed.data;
    };
    if (route.auth === "none") return validate(null);
    for (let attempt = 0; ; attempt++) {
      const token = await options.credentials.bearer();
      if (token === null) throw new LinkError("not_logged_in", options.credentials.error ?? NOT_SIGNED_IN_MESSAGE);
      try {
        return await validate(token);
      } catch (err) {
        if (
          attempt > 0 ||
          !(err instanceof AuthorityCallError) ||
          err.status !== 401 ||
          err.authorityCode !== "invalid_token"
        )
          throw err;
        options.credentials.rejected(token);
      }
    }
  }

  /** Opens `/v1/events` once with the current bearer; null when nobody is signed in. */
  async function openEvents(): Promise<OpenedStream | null> {
    const token = await options.credentials.bearer();
    if (token === null) return null;
    const abort = new AbortController();
    const res = await request(new URL("/v1/events", base), {
      method: "GET",
      headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
      dispatcher: shared,
      signal: abort.signal,
      // The server sends a comment every 15 s; silence for a minute means the connection is gone.
      bodyTimeout: 60_000,
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      if (res.statusCode === 401) options.credentials.rejected(token);
      throw new Error(`HTTP ${res.statusCode}`);
    }
    res.body.setEncoding("utf8");
    return {
      chunks: textChunks(res.body),
      close: () => abort.abort(),
    };
  }

  return {
    url: base.origin,
    call,
    health: () => call("health", {}, { timeoutMs: 3000 }),
    oauthToken: (form: TokenRequest): Promise<TokenResponse> => call("oauthToken", { body: form }),
    deviceAuthorization: (clientId: string): Promise<DeviceAuthorization> =>
      call("deviceAuthorization", { body: { client_id: clientId } }),
    revokeToken: (token: string) => call("revokeToken", { body: { token } }),
    instanceIsMine: (id: string): Promise<boolean> =>
      call("getInstance", { params: { id } }).then(
        () => true,
        (err: unknown) => {
          if (err instanceof AuthorityCallError && err.status === 404) return false;
          throw err;
        },
      ),
    registerInstance: (name: string) => call("registerInstance", { body: { name } }),
    resolve: (body: AgentResolveBody) => call("agentResolve", { body }),
    /**
     * Long-polls one request on the waits pool. Rejects at once with `rate_limited` (retryable) when
     * this agent already has `maxWaitsPerAgent` waits in flight on this instance.
     */
    async wait(
      requestId: string,
      body: { instanceId: string; agentClientId: string; timeoutMs: number },
      signal?: AbortSignal,
    ) {
      const key = `${body.instanceId}\u0000${body.agentClientId}`;
      const inFlight = waitsPerAgent.get(key) ?? 0;
      if (inFlight >= maxWaits)
        throw new LinkError(
          "rate_limited",
          `Too many pending waits: agent ${body.agentClientId} already waits for ${inFlight} approvals; try again when one is decided.`,
          { retryable: true },
        );
      waitsPerAgent.set(key, inFlight + 1);
      try {
        return await call(
          "agentWait",
          { params: { id: requestId }, body },
          { timeoutMs: body.timeoutMs + 10_000, signal },
        );
      } finally {
        const left = (waitsPerAgent.get(key) ?? 1) - 1;
        if (left === 0) waitsPerAgent.delete(key);
        else waitsPerAgent.set(key, left);
      }
    },
    listRequests: (status: "pending" | "all" = "pending") => call("listRequests", { query: { status } }),
    /** Approves request `id` with `body`'s terms; `presence` signs exactly those (403 `presence_required` / `presence_failed`). */
    approve: (id: string, body: ApproveBody, presence: PresenceSigner) =>
      call("approveRequest", {
        params: { id },
        body: { ...body, presence: presence(authorityPresenceAction("approveRequest", { requestId: id, ...body })) },
      }),
    deny: (id: string) => call("denyRequest", { params: { id }, body: {} }),
    listGrants: (all = false) => call("listGrants", { query: { all } }),
    /** Live grants approved before proofs of presence existed, client-bound (`--bind any`) first. */
    listLegacyGrants: () => call("listLegacyGrants", {}),
    /** Keeps the listed legacy grants; resolves with how many were kept. Needs `presence` (a yes). */
    keepLegacyGrants: (grantIds: string[], presence: PresenceSigner): Promise<number> =>
      call("keepLegacyGrants", {
        body: { grantIds, presence: presence(authorityPresenceAction("keepLegacyGrants", { grantIds })) },
      }).then((r) => r.kept),
    revokeGrant: (id: string, reason: GrantEndReason = "revoked") =>
      call("revokeGrant", { params: { id }, body: { reason } }),
    requesterGone: (id: string) => call("requesterGone", { params: { id }, body: {} }),
    revokeInstance: (id: string) => call("revokeInstance", { params: { id }, body: {} }),
    reportUsage: (report: UsageReport) => call("recordUsage", { body: report }),
    listSecrets: () => call("listSecrets", {}),
    /** Sets a secret's value; with `hosts` (null: any host) the call needs `presence`, which is asked for only then. */
    setSecret: (name: string, value: string, hosts: SecretHosts | null | undefined, presence: PresenceSigner) =>
      call("setSecret", {
        params: { name },
        body: {
          value,
          ...(hosts !== undefined
            ? { hosts, presence: presence(authorityPresenceAction("setSecret", { name, hosts })) }
            : {}),
        },
      }),
    setSecretHosts: (name: string, hosts: SecretHosts | null, presence: PresenceSigner) =>
      call("setSecretHosts", {
        params: { name },
        body: { hosts, presence: presence(authorityPresenceAction("setSecretHosts", { name, hosts })) },
      }),
    updateGrantPolicy: (id: string, policy: GrantPolicy | null, presence: PresenceSigner) =>
      call("updateGrantPolicy", {
        params: { id },
        body: { policy, presence: presence(authorityPresenceAction("updateGrantPolicy", { grantId: id, policy })) },
      }),
    deleteSecret: (name: string) => call("deleteSecret", { params: { name } }),
    audit: (query: {
      limit?: number | undefined;
      before?: string | undefined;
      agent?: string | undefined;
      variable?: string | undefined;
      secret?: string | undefined;
      host?: string | undefined;
    }) => call("audit", { query }),

    /**
     * Follows the event stream, reconnecting with jittered backoff. `onState` reports reachability:
     * the stream's, and also every call's (a call that cannot reach the authority says so at once).
     */
    follow(
      onEvent: (e: AuthorityEvent) => void,
      onState: (connected: boolean, error: string | null) => void,
    ): () => void {
      let streamOpen = false;
      reachability = (connected, error) => {
        // A successful call does not mean revocations can be heard: only the open stream says so.
        if (connected && !streamOpen) return;
        onState(connected, error);
      };
      const stop = followEvents({
        open: openEvents,
        sink: {
          event: onEvent,
          malformed: (reason, data) => log("authority event skipped", { reason, data: data.slice(0, 200) }),
        },
        onState: (connected, error) => {
          streamOpen = connected;
          onState(connected, error);
        },
      });
      return () => {
        reachability = null;
        stop();
      };
    },

    close(): void {
      void shared.destroy().catch(() => undefined);
      void waits.destroy().catch(() => undefined);
    },
  };
}

/** Query and form values are flat: strings, numbers and booleans (the route schemas allow nothing else). */
function isScalar(value: unknown): value is string | number | boolean {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The body's text chunks (its encoding is set to UTF-8 by the caller). */
async function* textChunks(body: AsyncIterable<unknown>): AsyncIterable<string> {
  for await (const chunk of body) yield typeof chunk === "string" ? chunk : String(chunk);
}
