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
  AuthorityErrorSchema,
  AuthorityEventSchema,
  GrantViewSchema,
  InstanceCreatedSchema,
  RequestViewSchema,
  SecretViewSchema,
  type AgentResolveBody,
  type ApproveBody,
  type AuthorityEvent,
  type UsageReport,
} from "../../shared/authority.js";
import { LinkError, type ErrorCode } from "../../shared/errors.js";

export interface AuthorityClientOptions {
  url: string;
  /** SHA-256 fingerprint (`AA:BB:…`) the server certificate must have (embedded authority). */
  pin?: string | null;
  /** Extra CA certificates (PEM) for a remote authority with a private CA. */
  ca?: string | null;
  linkToken: () => string | null;
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
  const agent = secure
    ? new https.Agent({
        keepAlive: true,
        maxSockets: 64,
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
    : new http.Agent({ keepAlive: true, maxSockets: 64 });

  function request<S extends ZodType>(method: string, path: string, schema: S | null, body?: unknown, opts: { auth?: boolean; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<z.infer<S>> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { Accept: "application/json" };
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["Content-Length"] = String(Buffer.byteLength(payload));
    }
    if (opts.auth !== false) {
      const token = options.linkToken();
      if (token === null) return Promise.reject(new LinkError("not_logged_in", "Piper Link has no token for the authority. Sign in again."));
      headers["Authorization"] = `Bearer ${token}`;
    }
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
            const err = AuthorityErrorSchema.safeParse(json);
            const code = err.success ? err.data.error : `http_${status}`;
            reject(new LinkError(codeFor(status, code), err.success ? err.data.error_description : `The authority answered HTTP ${status}.`, { retryable: status >= 500 || status === 429 }));
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
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  return {
    url: base.origin,
    health: () => request("GET", "/healthz", null, undefined, { auth: false, timeoutMs: 3000 }),
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
    audit: (q: { limit?: number | undefined; before?: string | undefined; agent?: string | undefined; variable?: string | undefined }) => {
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
        const token = options.linkToken();
        if (token === null) {
          setTimeout(connect, 1000).unref();
          return;
        }
        const lib = secure ? https : http;
        current = lib.get(new URL("/v1/events", base), { agent, headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" } }, (res) => {
          if (res.statusCode !== 200) {
            res.resume();
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
