/**
 * The rules every request to the loopback server passes before anything else (DESIGN.md section 3):
 * a Host header naming this Link (DNS rebinding), no foreign Origin (cross-site requests and
 * WebSocket hijacking), and the response headers that keep a page from reading what it should not.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { ErrorCode } from "../../../shared/errors.js";

/** Headers on every HTTP response of the Link. No CORS header is ever sent. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Cross-Origin-Resource-Policy": "same-origin",
  "X-Content-Type-Options": "nosniff",
  "Cache-Control": "no-store",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
};

export interface Rejection {
  status: number;
  code: ErrorCode;
  message: string;
}

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

export function checkRequest(req: IncomingMessage, policy: GuardPolicy): Rejection | null {
  const host = req.headers.host?.toLowerCase();
  if (host === undefined || !policy.hosts.has(host)) {
    return {
      status: 403,
      code: "forbidden_host",
      message: `Host ${JSON.stringify(req.headers.host ?? "")} is not this Piper Link; use 127.0.0.1:${policy.port}.`,
    };
  }
  const origin = req.headers.origin;
  if (origin !== undefined && !(policy.allowOwnOrigin && policy.origins.has(origin.toLowerCase()))) {
    return {
      status: 403,
      code: "forbidden_origin",
      message: "Requests from web pages are not accepted by Piper Link.",
    };
  }
  return null;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, extraHeaders: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    ...extraHeaders,
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
  });
  res.end(text);
}

export function sendError(res: ServerResponse, r: Rejection, extraHeaders: Record<string, string> = {}): void {
  sendJson(res, r.status, { error: r.code, message: r.message }, extraHeaders);
}

const REASONS: Record<number, string> = { 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 503: "Service Unavailable" };

/** Refuses a WebSocket upgrade with a plain HTTP response on the raw socket. */
export function rejectUpgrade(socket: Duplex, r: Rejection): void {
  const body = JSON.stringify({ error: r.code, message: r.message });
  const head = [
    `HTTP/1.1 ${r.status} ${REASONS[r.status] ?? "Error"}`,
    ...Object.entries(SECURITY_HEADERS).map(([k, v]) => `${k}: ${v}`),
    "Content-Type: application/json; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(body)}`,
    "Connection: close",
  ].join("\r\n");
  socket.end(`${head}\r\n\r\n${body}`);
}
