/**
 * The Link's loopback HTTPS listener for pyper-sdk (issue 13 item 9, DESIGN.md section 5): the three
 * POST endpoints of `PYPER_PATHS` on 127.0.0.1 only (port 31479 when free), with the certificate of
 * pyper-tls.ts. Every request passes, in this order, before its body is read:
 * 1. the owner check of the loopback server (process/user-guard.ts): a socket of another uid -> 403
 *    `foreign_user` (loopback is shared by every account on the machine);
 * 2. the loopback guard's Host and Origin rules (DNS rebinding; web pages send an Origin, agents none);
 * 3. the route (POST on one of the three paths) and a JSON body of at most 64 KiB valid for its schema.
 * Then the caller's program identity is looked up by its socket's endpoints (process/peer-resolver.ts) and the handler
 * (pyper-handlers.ts) answers. Errors are `{error, error_description}`, as pyper-sdk reads them.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { Logger } from "pino";
import type { ZodType } from "zod";
import { socketEnds, type SocketEnds } from "../../../shared/socket-owner.js";
import { PYPER_PATHS, PyperExchangeSchema, PyperResolveSchema, PyperScopedSchema, type PyperError } from "../../../shared/pyper.js";
import { allowedHosts, checkRequest, SECURITY_HEADERS, type GuardPolicy } from "../loopback/loopback-guard.js";
import type { PeerResolver } from "../process/peer-resolver.js";
import { socketOwner as procSocketOwner, type SocketOwner } from "../process/socket-table-linux.js";
import { checkPeerUser, isForeignProcess, type PeerUserVerdict } from "../process/user-guard.js";
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

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...SECURITY_HEADERS, "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

function fail(res: ServerResponse, failure: PyperFailure, extra: Record<string, string> = {}): void {
  const body: PyperError = { error: failure.code, error_description: failure.message };
  for (const [k, v] of Object.entries(extra)) res.setHeader(k, v);
  // An answer sent before the body was read: close, so the unread body is not parsed as a request.
  if (!res.req.complete) res.setHeader("Connection", "close");
  send(res, failure.status, body);
}

/** Reads the body as JSON, at most MAX_BODY_BYTES; PyperFailure 400 / 413 otherwise. */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = req.headers["content-type"] ?? "";
  if (!/^application\/json\b/i.test(type)) throw new PyperFailure(400, "invalid_request", "Send a JSON body (Content-Type: application/json).");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buf.length;
    if (size > MAX_BODY_BYTES) throw new PyperFailure(413, "payload_too_large", "The request body is larger than 64 KiB.");
    chunks.push(buf);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new PyperFailure(400, "invalid_request", "The body is not valid JSON.");
  }
}

function parse<T>(schema: ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const detail = r.error.issues
    .slice(0, 3)
    .map((i) => (i.path.length ? `${i.path.map(String).join(".")}: ${i.message}` : i.message))
    .join("; ");
  throw new PyperFailure(400, "invalid_request", detail);
}

function listen(server: https.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once("error", onError);
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
      server.off("error", onError);
      const address = server.address();
      resolve(typeof address === "object" && address !== null ? address.port : port);
    });
  });
}

/**
 * Starts the listener on 127.0.0.1 (never another interface). Resolves when it listens; rejects
 * only when no port at all can be bound.
 */
export async function startPyperServer(options: PyperServerOptions): Promise<PyperListener> {
  const { log, handlers, peers } = options;
  const ownUid = typeof process.getuid === "function" ? process.getuid() : null;
  const lookupOwner = options.socketOwner ?? procSocketOwner;
  const verdicts = new WeakMap<Socket, Promise<PeerUserVerdict>>();
  const refusalsLogged = new Set<string>();
  let port: number;
  let policy: GuardPolicy | null = null;

  /** The owner check, once per connection (keep-alive connections send several requests). */
  function verdictFor(socket: Socket): Promise<PeerUserVerdict> {
    let verdict = verdicts.get(socket);
    if (verdict === undefined) {
      verdict = lookupOwner(socketEnds(socket)).then(
        (owner) => checkPeerUser(owner, ownUid),
        (): PeerUserVerdict => checkPeerUser({ uid: null, reason: "not_found" }, ownUid),
      );
      verdicts.set(socket, verdict);
    }
    return verdict;
  }

  /** The answer to one request: a result body (200), or a PyperFailure thrown. */
  async function handle(req: IncomingMessage): Promise<unknown> {
    const verdict = await verdictFor(req.socket);
    if (!verdict.allow) {
      if (!refusalsLogged.has(verdict.rejection.message)) {
        refusalsLogged.add(verdict.rejection.message);
        log.warn({ peerPort: req.socket.remotePort }, `pyper endpoint: ${verdict.rejection.message}`);
      }
      throw new PyperFailure(403, "foreign_user", verdict.rejection.message);
    }
    const rejection = policy === null ? null : checkRequest(req, policy);
    if (rejection !== null) throw new PyperFailure(403, rejection.code === "forbidden_origin" ? "forbidden_origin" : "forbidden_host", rejection.message);
    const pathname = (req.url ?? "/").split("?")[0] ?? "/";
    const route = Object.entries(PYPER_PATHS).find(([, p]) => p === pathname)?.[0];
    if (route === undefined) throw new PyperFailure(404, "not_found", `No endpoint ${pathname} here; the pyper-sdk endpoints are ${Object.values(PYPER_PATHS).join(", ")}.`);
    if (req.method !== "POST") throw new PyperFailure(405, "method_not_allowed", "Only POST is supported here.");
    const json = await readJson(req);
    const ends = socketEnds(req.socket);
    const identity = ends === null ? null : await peers.lookup(ends);
    // The socket's owner was checked above; the process holding the socket must be this user's too.
    if (isForeignProcess(identity, ownUid)) {
      throw new PyperFailure(403, "foreign_user", "This Piper Link serves only the user who runs it; this connection belongs to another user's process.");
    }
    if (route === "resolveMapping") return handlers.resolveMapping(parse(PyperResolveSchema, json), identity);
    if (route === "scopedCredentials") return handlers.scopedCredentials(parse(PyperScopedSchema, json), identity);
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "")?.[1] ?? null;
    return handlers.exchange(parse(PyperExchangeSchema, json), identity, bearer);
  }

  const server = https.createServer({ key: options.tls.key, cert: options.tls.cert, minVersion: "TLSv1.2" }, (req, res) => {
    handle(req).then(
      (body) => {
        send(res, 200, body);
      },
      (err: unknown) => {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (err instanceof PyperFailure) {
          fail(res, err, err.status === 405 ? { Allow: "POST" } : {});
          return;
        }
        log.error({ err: err instanceof Error ? err.message : String(err) }, "pyper endpoint failed");
        fail(res, new PyperFailure(503, "authority_unavailable", "Piper Link could not answer this request."));
      },
    );
  });
  // Calls wait on the authority (15 s at most); a client that sends nothing is cut off sooner.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  server.on("tlsClientError", (err) => log.debug({ err: err.message }, "pyper endpoint: TLS handshake failed"));

  let fallback = false;
  try {
    port = await listen(server, options.port);
  } catch (err) {
    if (options.port === 0 || !(err instanceof Error && "code" in err && err.code === "EADDRINUSE")) throw err;
    port = await listen(server, 0);
    fallback = true;
    log.warn({ wanted: options.port, port }, "pyper port in use; listening on a free port");
  }
  policy = { port, allowOwnOrigin: false, hosts: allowedHosts(port), origins: new Set() };

  return {
    port,
    fallback,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
