/**
 * The rules every request to a loopback listener passes after the owner check (DESIGN.md section 3):
 * a Host header naming this Link (DNS rebinding), no foreign Origin (cross-site requests and
 * WebSocket hijacking), and the response headers that keep a page from reading what it should not.
 * Applied by the one hook of `loopback-http.ts`.
 */
import type { IncomingHttpHeaders } from "node:http";

/** Headers on every HTTP response of the Link. No CORS header is ever sent. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Cross-Origin-Resource-Policy": "same-origin",
  "X-Content-Type-Options": "nosniff",
  "Cache-Control": "no-store",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
};

/** A request the guard refuses: always 403, with the code naming the rule. */
export interface GuardRejection {
  status: 403;
  code: "forbidden_host" | "forbidden_origin";
  message: string;
}

/** The `Host` values naming a listener on `port` (127.0.0.1, localhost, [::1]). */
export function allowedHosts(port: number): Set<string> {
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]);
}

/** The origins of the Link's own browser UI (served by this server in headless mode). */
export function ownOrigins(port: number): Set<string> {
  return new Set([`http://127.0.0.1:${port}`, `http://localhost:${port}`, `http://[::1]:${port}`]);
}

export interface GuardPolicy {
  port: number;
  /** Agent endpoints accept no Origin at all: agents are not browsers, and the UI never uses them. */
  allowOwnOrigin: boolean;
  /** allowedHosts(port) and ownOrigins(port), computed once per server. */
  hosts: ReadonlySet<string>;
  origins: ReadonlySet<string>;
}

/** The guard's verdict on a request's headers: null (pass) or the rejection to answer. */
export function checkRequest(headers: IncomingHttpHeaders, policy: GuardPolicy): GuardRejection | null {
  const host = headers.host?.toLowerCase();
  if (host === undefined || !policy.hosts.has(host)) {
    return {
      status: 403,
      code: "forbidden_host",
      message: `Host ${JSON.stringify(headers.host ?? "")} is not this Piper Link; use 127.0.0.1:${policy.port}.`,
    };
  }
  const origin = headers.origin;
  if (origin !== undefined && !(policy.allowOwnOrigin && policy.origins.has(origin.toLowerCase()))) {
    return {
      status: 403,
      code: "forbidden_origin",
      message: "Requests from web pages are not accepted by Piper Link.",
    };
  }
  return null;
}
