/**
 * The Link's one way to the authority (embedded or remote): HTTPS with keep-alive, the embedded
 * authority's certificate pinned by fingerprint (or a configured CA for a remote one), the Link
 * token as bearer, responses validated by the shared schemas, and errors turned into LinkErrors
 * with stable codes (`authority_unavailable` when it cannot be reached, retryable).
 */
import http from "node:http";
import https from "node:https";
import type { PeerCertificate } from "node:tls";
import type { z, ZodType } from "zod";
import {
  AgentResolveResultSchema,
  AgentWaitResultSchema,
  AuditPageSchema,
  OAuthErrorSchema,
  AuthorityEventSchema,
  GrantViewSchema,
  DeviceAuthorizationSchema,
  InstanceCreatedSchema,
  RequestViewSchema,
  SecretViewSchema,
  TokenResponseSchema,
  type AgentResolveBody,
  type ApproveBody,
  type AuthorityEvent,
  type UsageReport,
} from "../../../shared/authority.js";
import { LinkError, type ErrorCode } from "../../../shared/errors.js";

export interface AuthorityClientOptions {
  url: string;
  /** SHA-256 fingerprint (`AA:BB:…`) the server certificate must have (embedded authority). */
  pin?: string | null;
  /** Extra CA certificates (PEM) for a remote authority with a private CA. */
  ca?: string | null;
  credentials: Credentials;
}

/** Where the bearer token for Link API calls comes from (an OAuth session, or a provisioned Link token). */
export interface Credentials {
  bearer(): Promise<string | null>;
  /** The authority refused this token (401): forget it, so the next `bearer()` refreshes. */
  rejected(token: string): void;
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

function codeFor(status: number, error: string): ErrorCode {
  if (error === "secret_not_found") return "secret_not_found";
  if (status === 401) return error === "invalid_instance" ? "not_logged_in" : "unauthorized";
  if (status === 404) return "not_found";
  if (status === 409) return "conflict";
  if (status === 429) return "rate_limited";
  if (status === 400 || status === 413) return "bad_request";
  if (status === 403) return "denied";
  return "authority_unavailable";
}

export type AuthorityClient = ReturnType<typeof createAuthorityClient>;

export function createAuthorityClient(options: AuthorityClientOptions) {
  const base = new URL(options.url);
  const secure = base.protocol === "https:";
  // A burst may open up to 64 connections; afterwards a few stay warm and idle ones close.
  const pool = { keepAlive: true, maxSockets: 64, maxFreeSockets: 8, timeout: 30_000 };
  const agent = secure
    ? new https.Agent({
        ...pool,
        ...(options.pin
          ? {
              // Pinned: the certificate is self-signed, so trust is the fingerprint, not a CA chain.
              rejectUnauthorized: false,
              checkServerIdentity: (_host: string, cert: PeerCertificate) =>
                cert.fingerprint256 === options.pin ? undefined : new Error(`authority certificate ${cert.fingerprint256} does not match the pinned fingerprint`),
            }
          : {}),
        ...(options.ca ? { ca: options.ca } : {}),
      })
    : new http.Agent(pool);

  interface CallOptions {
    auth?: boolean;
    timeoutMs?: number;
    signal?: AbortSignal;
  }

  /** A Link API call: JSON body, bearer from the credentials, one retry after a refused token. */
  async function request<S extends ZodType>(method: string, path: string, schema: S | null, body?: unknown, opts: CallOptions = {}): Promise<z.infer<S>> {
    const payload = body === undefined ? undefined : { type: "application/json", text: JSON.stringify(body) };
    if (opts.auth === false) return send(method, path, schema, payload, null, opts);
    for (let attempt = 0; ; attempt++) {
      const token = await options.credentials.bearer();
      if (token === null) throw new LinkError("not_logged_in", "Piper Link is not signed in to its authority. Run `piper-link login`.");
      try {
        return await send(method, path, schema, payload, token, opts);
      } catch (err) {
        if (attempt > 0 || !(err instanceof AuthorityCallError) || err.status !== 401 || err.authorityCode !== "invalid_token") throw err;
        options.credentials.rejected(token);
      }
    }
  }

  function send<S extends ZodType>(method: string, path: string, schema: S | null, payload: { type: string; text: string } | undefined, bearer: string | null, opts: CallOptions): Promise<z.infer<S>> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (payload !== undefined) {
      headers["Content-Type"] = payload.type;
      headers["Content-Length"] = String(Buffer.byteLength(payload.text));
    }
    if (bearer !== null) headers["Authorization"] = `Bearer ${bearer}`;
    const url = new URL(path, base);
    const lib = secure ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(url, { method, headers, agent, timeout: opts.timeoutMs ?? 15_000, ...(opts.signal ? { signal: opts.signal } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          const status = res.statusCode ?? 0;
          let json: unknown;
          try {
            json = text.length > 0 ? JSON.parse(text) : null;
          } catch {
            json = null;
          }
          if (status >= 400) {
            // Any answer RFC 6749 section 5.2 allows: only `error` is required (issue 16 item 2).
            const err = OAuthErrorSchema.safeParse(json);
            const code = err.success ? err.data.error : `http_${status}`;
            const message = err.success ? (err.data.error_description ?? `The authority answered ${err.data.error} (HTTP ${status}).`) : `The authority answered HTTP ${status}.`;
            reject(new AuthorityCallError(codeFor(status, code), message, code, status));
            return;
          }
          if (schema === null) return resolve(undefined as z.infer<S>);
          const parsed = schema.safeParse(json);
          if (!parsed.success) reject(new LinkError("authority_unavailable", `The authority sent an unexpected answer to ${method} ${path}.`));
          else resolve(parsed.data);
        });
      });
      req.on("timeout", () => req.destroy(new Error("timed out")));
      req.on("error", (err) => {
        if (opts.signal?.aborted) reject(new LinkError("timeout", "The wait was cancelled."));
        else reject(new LinkError("authority_unavailable", `The authority at ${base.origin} is unreachable (${err.message}). Piper Link keeps retrying.`, { retryable: true, cause: err }));
      });
      if (payload !== undefined) req.write(payload.text);
      req.end();
    });
  }

  return {
    url: base.origin,
    health: () => request("GET", "/healthz", null, undefined, { auth: false, timeoutMs: 3000 }),
    /** OAuth endpoints take form bodies and no bearer. */
    oauthToken: (form: Record<string, string>) => send("POST", "/oauth/token", TokenResponseSchema, { type: "application/x-www-form-urlencoded", text: new URLSearchParams(form).toString() }, null, {}),
    deviceAuthorization: (clientId: string) => send("POST", "/oauth/device_authorization", DeviceAuthorizationSchema, { type: "application/x-www-form-urlencoded", text: new URLSearchParams({ client_id: clientId }).toString() }, null, {}),
    revokeToken: (token: string) => send("POST", "/oauth/revoke", null, { type: "application/x-www-form-urlencoded", text: new URLSearchParams({ token }).toString() }, null, {}),
    instanceIsMine: (id: string) => request("GET", `/v1/instances/${encodeURIComponent(id)}`, null).then(() => true, (err: unknown) => (err instanceof AuthorityCallError && err.status === 404 ? false : Promise.reject(err instanceof Error ? err : new Error(String(err))))),
    registerInstance: (name: string) => request("POST", "/v1/instances", InstanceCreatedSchema, { name }),
    resolve: (body: AgentResolveBody) => request("POST", "/v1/agent/resolve", AgentResolveResultSchema, body, { auth: false }),
    wait: (requestId: string, body: { instanceId: string; agentClientId: string; timeoutMs: number }, signal?: AbortSignal) =>
      request("POST", `/v1/agent/requests/${encodeURIComponent(requestId)}/wait`, AgentWaitResultSchema, body, { auth: false, timeoutMs: body.timeoutMs + 10_000, ...(signal ? { signal } : {}) }),
    listRequests: (status: "pending" | "all" = "pending") => request("GET", `/v1/requests?status=${status}`, RequestViewSchema.array()),
    approve: (id: string, body: ApproveBody) => request("POST", `/v1/requests/${encodeURIComponent(id)}/approve`, GrantViewSchema, body),
    deny: (id: string) => request("POST", `/v1/requests/${encodeURIComponent(id)}/deny`, RequestViewSchema, {}),
    listGrants: (all = false) => request("GET", `/v1/grants?all=${all}`, GrantViewSchema.array()),
    revokeGrant: (id: string, reason: "revoked" | "process_exited" = "revoked") => request("POST", `/v1/grants/${encodeURIComponent(id)}/revoke`, GrantViewSchema, { reason }),
    reportUsage: (report: UsageReport) => request("POST", "/v1/usage", null, report),
    listSecrets: () => request("GET", "/v1/secrets", SecretViewSchema.array()),
    setSecret: (name: string, value: string) => request("PUT", `/v1/secrets/${encodeURIComponent(name)}`, SecretViewSchema, { value }),
    deleteSecret: (name: string) => request("DELETE", `/v1/secrets/${encodeURIComponent(name)}`, null),
    audit: (q: { limit?: number | undefined; before?: string | undefined; agent?: string | undefined; variable?: string | undefined; secret?: string | undefined; host?: string | undefined }) => {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(q)) if (v !== undefined) params.set(k, String(v));
      return request("GET", `/v1/audit?${params.toString()}`, AuditPageSchema);
    },

    /** Follows the event stream, reconnecting with backoff; `onState` reports reachability. */
    follow(onEvent: (e: AuthorityEvent) => void, onState: (connected: boolean, error: string | null) => void): () => void {
      let stopped = false;
      let current: http.ClientRequest | null = null;
      let delay = 250;
      const connect = (): void => {
        if (stopped) return;
        void options.credentials.bearer().then(
          (token) => {
            if (token === null) setTimeout(connect, 1000).unref();
            else open(token);
          },
          () => setTimeout(connect, 1000).unref(),
        );
      };
      const open = (token: string): void => {
        const lib = secure ? https : http;
        current = lib.get(new URL("/v1/events", base), { agent, headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" } }, (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            if (res.statusCode === 401) options.credentials.rejected(token);
            retry(`HTTP ${res.statusCode ?? 0}`);
            return;
          }
          delay = 250;
          onState(true, null);
          let buffer = "";
          res.on("data", (c: Buffer) => {
            buffer += c.toString("utf8");
            let at: number;
            while ((at = buffer.indexOf("\n\n")) >= 0) {
              const block = buffer.slice(0, at);
              buffer = buffer.slice(at + 2);
              for (const line of block.split("\n")) {
                if (!line.startsWith("data: ")) continue;
                const parsed = AuthorityEventSchema.safeParse(JSON.parse(line.slice(6)));
                if (parsed.success) onEvent(parsed.data);
              }
            }
          });
          res.on("end", () => retry("event stream ended"));
          res.on("error", (e) => retry(e.message));
        });
        current.on("error", (e) => retry(e.message));
      };
      const retry = (why: string): void => {
        if (stopped) return;
        onState(false, why);
        setTimeout(connect, delay).unref();
        delay = Math.min(delay * 2, 10_000);
      };
      connect();
      return () => {
        stopped = true;
        current?.destroy();
      };
    },

    close(): void {
      agent.destroy();
    },
  };
}
