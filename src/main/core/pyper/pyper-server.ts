/**
 * The Link's loopback HTTPS listener for pyper-sdk (issue 13 item 9, DESIGN.md section 5): the three
 * POST endpoints of `PYPER_PATHS` on 127.0.0.1 only (port 31479 when free), with the certificate of
 * pyper-tls.ts, built on the loopback room's one HTTP stack (loopback/loopback-http.ts). Every
 * request passes its hook, in this order, before its body is read:
 * 1. the owner check (process/user-guard.ts): a socket of another uid -> 403 `foreign_user`
 *    (loopback is shared by every account on the machine);
 * 2. the loopback guard's Host and Origin rules (DNS rebinding; web pages send an Origin, agents none);
 * 3. the route: an unknown path -> 404, another method -> 405;
 * then a JSON body of at most 64 KiB (Fastify's parser, `__proto__` and `constructor` keys refused)
 * valid for its schema. Then the caller's program identity is looked up by its socket's endpoints
 * (process/peer-resolver.ts) and the handler (pyper-handlers.ts) answers. Errors are
 * `{error, error_description}`, as pyper-sdk reads them.
 */
import type { Logger } from "pino";
import type { ZodType } from "zod";
import { socketEnds, type SocketEnds } from "../../../shared/socket-owner.js";
import {
  PYPER_PATHS,
  PyperExchangeSchema,
  PyperResolveSchema,
  PyperScopedSchema,
  type PyperErrorCode,
} from "../../../shared/pyper.js";
import { createLoopbackApp, type StackErrorCode } from "../loopback/loopback-http.js";
import type { PeerResolver } from "../process/peer-resolver.js";
import type { SocketOwner } from "../process/socket-table-linux.js";
import { isForeignProcess } from "../process/user-guard.js";
import { PyperFailure, type PyperHandlers } from "./pyper-handlers.js";

export interface PyperServerOptions {
  /** Preferred port (31479 by default in the Link; 0 picks a free one). Taken: a free one is used. */
  port: number;
  tls: { key: string; cert: string };
  log: Logger;
  peers: PeerResolver;
  handlers: PyperHandlers;
  /** Who owns a peer's socket (default: /proc/net/tcp{,6}); injectable for platforms without /proc. */
  socketOwner?: (ends: SocketEnds | null) => Promise<SocketOwner>;
}

export interface PyperListener {
  port: number;
  /** True when the preferred port was taken. */
  fallback: boolean;
  /** Closes the listener and every open connection. */
  stop(): Promise<void>;
}

/** Largest request body accepted (bytes); pyper-sdk's bodies are a few hundred. */
const MAX_BODY_BYTES = 64 * 1024;

/** pyper-sdk's code (and status) for each of the stack's: `{error, error_description}`. */
const PYPER_CODES: Readonly<Record<StackErrorCode, { code: PyperErrorCode; status?: number }>> = {
  foreign_user: { code: "foreign_user" },
  forbidden_host: { code: "forbidden_host" },
  forbidden_origin: { code: "forbidden_origin" },
  not_found: { code: "not_found" },
  method_not_allowed: { code: "method_not_allowed" },
  payload_too_large: { code: "payload_too_large" },
  // pyper-sdk reads any 4xx body; a body that is not JSON is an invalid request to it.
  unsupported_media_type: { code: "invalid_request", status: 400 },
  bad_request: { code: "invalid_request" },
  request_timeout: { code: "invalid_request" },
  too_many_connections: { code: "rate_limited" },
  authority_unavailable: { code: "authority_unavailable" },
  internal_error: { code: "authority_unavailable", status: 503 },
};

function parse<T>(schema: ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const detail = r.error.issues
    .slice(0, 3)
    .map((i) => (i.path.length ? `${i.path.map(String).join(".")}: ${i.message}` : i.message))
    .join("; ");
  throw new PyperFailure(400, "invalid_request", detail);
}

/**
 * Starts the listener on 127.0.0.1 (never another interface). Resolves when it listens; rejects
 * only when no port at all can be bound.
 */
export async function startPyperServer(options: PyperServerOptions): Promise<PyperListener> {
  const { log, handlers, peers } = options;
  const ownUid = typeof process.getuid === "function" ? process.getuid() : null;
  const stack = createLoopbackApp({
    name: "pyper endpoint",
    log,
    tls: options.tls,
    // Calls wait on the authority (15 s at most); a client that sends nothing is cut off sooner.
    timeouts: { headersMs: 10_000, requestMs: 30_000, keepAliveMs: 5_000 },
    bodyLimit: MAX_BODY_BYTES,
    ...(options.socketOwner !== undefined ? { socketOwner: options.socketOwner } : {}),
    writeError: (f) => {
      const mapped = PYPER_CODES[f.code];
      const message =
        f.code === "unsupported_media_type"
          ? "Send a JSON body (Content-Type: application/json)."
          : f.code === "payload_too_large"
            ? "The request body is larger than 64 KiB."
            : f.message;
      return { status: mapped.status ?? f.status, body: { error: mapped.code, error_description: message } };
    },
    unrouted: (_method, pathname, allowed) =>
      allowed.length > 0
        ? {
            status: 405,
            code: "method_not_allowed",
            message: "Only POST is supported here.",
            headers: { Allow: "POST" },
          }
        : {
            status: 404,
            code: "not_found",
            message: `No endpoint ${pathname.slice(0, 200)} here; the pyper-sdk endpoints are ${Object.values(PYPER_PATHS).join(", ")}.`,
          },
  });
  const { app } = stack;
  // JSON only (Fastify's parser, which also refuses `__proto__` keys); the body is read after the hook.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "string" }, app.getDefaultJsonParser("error", "error"));

  for (const [route, url] of Object.entries(PYPER_PATHS)) {
    app.post(url, async (request, reply) => {
      try {
        const ends = socketEnds(request.raw.socket);
        const identity = ends === null ? null : await peers.lookup(ends);
        // The socket's owner was checked by the hook; the process holding the socket must be this user's too.
        if (isForeignProcess(identity, ownUid)) {
          throw new PyperFailure(
            403,
            "foreign_user",
            "This Piper Link serves only the user who runs it; this connection belongs to another user's process.",
          );
        }
        const body: unknown = request.body;
        if (body === undefined)
          throw new PyperFailure(400, "invalid_request", "Send a JSON body (Content-Type: application/json).");
        if (route === "resolveMapping")
          return await reply.send(await handlers.resolveMapping(parse(PyperResolveSchema, body), identity));
        if (route === "scopedCredentials")
          return await reply.send(handlers.scopedCredentials(parse(PyperScopedSchema, body), identity));
        const bearer = /^Bearer (\S+)$/.exec(request.headers.authorization ?? "")?.[1] ?? null;
        return await reply.send(await handlers.exchange(parse(PyperExchangeSchema, body), identity, bearer));
      } catch (err) {
        if (err instanceof PyperFailure)
          return reply.code(err.status).send({ error: err.code, error_description: err.message });
        log.error({ err: err instanceof Error ? err.message : String(err) }, "pyper endpoint failed");
        return reply
          .code(503)
          .send({ error: "authority_unavailable", error_description: "Piper Link could not answer this request." });
      }
    });
  }

  const address = await stack.listen(options.port, false);
  return { port: address.port, fallback: address.fallback, stop: () => stack.close() };
}
