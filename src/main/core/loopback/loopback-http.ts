/**
 * The one HTTP stack of the Link's loopback listeners (issue 23 item 14, DESIGN.md section 3): the
 * loopback server (`link-server.ts`: compat endpoints, browser window, sign-in pages and the two
 * WebSocket channels), pyper-sdk's HTTPS endpoints (`pyper/pyper-server.ts`) and the sign-in's
 * one-shot redirect listener (`account/sign-in-flows.ts`) are each a Fastify instance built here,
 * with @fastify/websocket routing upgrades through the same pipeline. So every request and every
 * upgrade passes one `onRequest` hook, in this order, before a route runs or a body is read:
 *
 * 1. the owner check (`process/user-guard.ts`): a socket of another uid gets 403 `foreign_user`
 *    (loopback is shared by every account on the machine); computed once per TCP connection, started
 *    as soon as it is accepted;
 * 2. only origin-form targets (`/path`): an absolute-form target (`GET http://host/…`) names a host
 *    the Host check would not see (RFC 9112 section 3.2.2), so it is a 400;
 * 3. the loopback guard (`loopback-guard.ts`): a `Host` naming this listener (DNS rebinding), and no
 *    `Origin` unless the route takes the Link's own pages (`config.ownOrigin`);
 * 4. no route: 404, or 405 where the path exists for another method (answered here, so an unknown
 *    route's body is never read); a static route answers only its exact path, not a percent-encoded
 *    spelling of it; an upgrade to a route that is not a WebSocket endpoint: 404.
 *
 * Every answer the stack writes carries `SECURITY_HEADERS` (Node's parser errors through
 * `clientErrorHandler` too; a few answers never reach it: Node's own 400 to an HTTP/1.1 request
 * without Host, and ws's answer to a malformed WebSocket handshake). Errors are written in the listener's own shape
 * (`{error, message}` for the Link, pyper-sdk's `{error, error_description}`) from one table of
 * codes (`StackErrorCode`), framework errors (body too large, wrong media type, bad JSON, a slow or
 * malformed request) included. The listener binds 127.0.0.1 (and ::1 when asked and present) itself,
 * on the preferred port or a free one: Fastify's own `localhost` binding follows a DNS lookup and
 * cannot fall back when the port is taken.
 */
import http from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import websocket from "@fastify/websocket";
import Fastify, {
  LogController,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type RawServerDefault,
} from "fastify";
import type { Logger } from "pino";
import type { WebSocket } from "ws";
import type { ErrorCode } from "../../../shared/errors.js";
import { socketEnds, type SocketEnds } from "../../../shared/socket-owner.js";
import { socketOwner as procSocketOwner, type SocketOwner } from "../process/socket-table-linux.js";
import { checkPeerUser, type PeerUserVerdict } from "../process/user-guard.js";
import { allowedHosts, checkRequest, ownOrigins, SECURITY_HEADERS, type GuardPolicy } from "./loopback-guard.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /**
     * The route may be called from the Link's own pages (their Origin); false: no Origin at all;
     * absent: the listener's `ownOriginByDefault`.
     */
    ownOrigin?: boolean;
    /** A WebSocket endpoint: a plain request (no Upgrade) is answered 404 by the hook. */
    websocket?: boolean;
  }
}

/** A reply of the stack's listeners (Fastify's), for the rooms that answer through it without importing Fastify. */
export type StackReply = FastifyReply;

/** The codes the stack itself answers with; each listener names them in its own error shape. */
export type StackErrorCode =
  | "foreign_user"
  | "forbidden_host"
  | "forbidden_origin"
  | "not_found"
  | "method_not_allowed"
  | "payload_too_large"
  | "unsupported_media_type"
  | "bad_request"
  | "request_timeout"
  | "too_many_connections"
  | "authority_unavailable"
  | "internal_error";

/** One refusal of the stack: HTTP status, code and a sentence for the person or developer. */
export interface StackFailure {
  status: number;
  code: StackErrorCode;
  message: string;
  /** Extra response headers (`Allow` on a 405). */
  headers?: Readonly<Record<string, string>>;
}

/** How a listener writes an error: its status (a listener may remap one) and JSON body. */
export type ErrorWriter = (failure: StackFailure) => { status: number; body: Record<string, string> };

export interface LoopbackAppOptions {
  /** What the listener is called in log lines ("loopback server", "pyper endpoint", "sign-in redirect"). */
  name: string;
  log: Logger;
  /** Key and certificate in PEM: HTTPS (TLS 1.2 or later); absent: plain HTTP. */
  tls?: { key: string; cert: string };
  /** Slow clients (slowloris) are cut off: whole headers within `headersMs`, the request within `requestMs`. */
  timeouts: { headersMs: number; requestMs: number; keepAliveMs: number };
  /** Largest request body, in bytes (Fastify answers 413 beyond it). */
  bodyLimit: number;
  /** Who owns a peer's socket (default: /proc/net/tcp{,6}); injectable for tests and platforms without /proc. */
  socketOwner?: (ends: SocketEnds | null) => Promise<SocketOwner>;
  /** The listener's error shape. */
  writeError: ErrorWriter;
  /** Whether routes without an `ownOrigin` setting, and unknown routes, take the Link's own pages' Origin (default false). */
  ownOriginByDefault?: boolean;
  /**
   * The answer for a request no route takes (`allowed`: the methods its path has, empty when the path
   * is unknown). Default: 405 with `Allow` when the path exists, else 404.
   */
  unrouted?: (method: string, pathname: string, allowed: readonly string[]) => StackFailure;
  /** WebSocket endpoints (routes with `websocket: true`): ws's frame limit and subprotocol choice. */
  websocket?: {
    maxPayload: number;
    /** The subprotocol to accept for a request to `pathname`, or false (none offered that fits). */
    protocol(pathname: string, offered: ReadonlySet<string>): string | false;
  };
}

/** A loopback listener: its Fastify instance (routes are added before `listen`) and its lifecycle. */
export interface LoopbackApp {
  readonly app: FastifyInstance;
  /**
   * Listens on 127.0.0.1 at `port` (0: any free port) and, with `ipv6`, on ::1 at the same port when
   * the machine has it. A taken preferred port falls back to a free one (`fallback`); any other error
   * rejects. Never binds a non-loopback address.
   */
  listen(port: number, ipv6: boolean): Promise<{ port: number; fallback: boolean; hosts: string[] }>;
  /**
   * Adds a WebSocket endpoint at `url` to `scope` (this app or a plugin of it). `admit` may refuse the
   * upgrade (answer `reply`, e.g. 503 at a connection limit) after the hook has passed it; `open`
   * gets the socket and its connection's endpoints once upgraded. The upgrade's HTTP request and
   * response objects are released then: a long-lived channel holds only its socket.
   */
  readonly websocketRoute: (
    scope: FastifyInstance,
    url: string,
    route: {
      ownOrigin?: boolean;
      admit?: (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>;
    },
    open: (ws: WebSocket, ends: SocketEnds | null) => void,
  ) => void;
  /** Answers `reply` with `failure` in this listener's error shape. */
  readonly refuse: (request: FastifyRequest, reply: FastifyReply, failure: StackFailure) => FastifyReply;
  /** Stops taking connections; open ones end after their answers (a `Connection: close` listener). */
  unlisten(): void;
  /** Stops listening and closes every connection, a half-sent request included. */
  close(): Promise<void>;
}

/** The Link's error code for each of the stack's: its `{error, message}` shape (DESIGN.md section 4). */
const LINK_CODES: Readonly<Record<StackErrorCode, ErrorCode>> = {
  foreign_user: "foreign_user",
  forbidden_host: "forbidden_host",
  forbidden_origin: "forbidden_origin",
  not_found: "not_found",
  method_not_allowed: "method_not_allowed",
  payload_too_large: "bad_request",
  unsupported_media_type: "bad_request",
  bad_request: "bad_request",
  request_timeout: "timeout",
  too_many_connections: "too_many_connections",
  authority_unavailable: "authority_unavailable",
  internal_error: "internal_error",
};

/** The Link's error writer: `{error, message}` with the Link's codes, the stack's status. */
export const linkErrorWriter: ErrorWriter = (f) => ({
  status: f.status,
  body: { error: LINK_CODES[f.code], message: f.message },
});

/** The path of a request target, without query or fragment. */
export function pathOf(url: string | undefined): string {
  const raw = url ?? "/";
  const end = raw.search(/[?#]/);
  return end < 0 ? raw : raw.slice(0, end);
}

const FRAMEWORK_FAILURES: Readonly<Record<string, Omit<StackFailure, "message"> & { message?: string }>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: "payload_too_large" },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: "bad_request" },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: "unsupported_media_type" },
  FST_ERR_CTP_INVALID_TYPE: { status: 400, code: "bad_request" },
  FST_ERR_CTP_EMPTY_TYPE: { status: 400, code: "bad_request" },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: "bad_request", message: "The body is empty; send a JSON object." },
  FST_ERR_CTP_INVALID_JSON_BODY: {
    status: 400,
    code: "bad_request",
    message: "The body is not valid JSON, or it has a `__proto__` or `constructor` key.",
  },
  FST_ERR_BAD_URL: { status: 400, code: "bad_request", message: "The request's path is not a valid URL path." },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, code: "bad_request", message: "The request's path is too long." },
};

/** A framework error (Fastify's FST_* codes, body parser errors) as a stack failure; anything else is internal. */
export function frameworkFailure(err: FastifyError): StackFailure {
  const known = FRAMEWORK_FAILURES[err.code];
  if (known !== undefined) return { status: known.status, code: known.code, message: known.message ?? err.message };
  // The JSON parser's own errors (prototype poisoning, a SyntaxError) carry a 4xx status.
  if (typeof err.statusCode === "number" && err.statusCode >= 400 && err.statusCode < 500) {
    return { status: 400, code: "bad_request", message: err.message };
  }
  return { status: 500, code: "internal_error", message: "Piper Link could not answer this request; see its log." };
}

/**
 * Builds a loopback listener with the owner-check hook, the guard, the error shape and the security
 * headers; the caller adds its routes, then `listen`s.
 */
export function createLoopbackApp(options: LoopbackAppOptions): LoopbackApp {
  const { log, writeError } = options;
  const ownUid = typeof process.getuid === "function" ? process.getuid() : null;
  const lookupOwner = options.socketOwner ?? procSocketOwner;
  const verdicts = new WeakMap<Socket, Promise<PeerUserVerdict>>();
  const refusalsLogged = new Set<string>();
  let unverifiedLogged = false;
  let policy: { own: GuardPolicy; none: GuardPolicy } | null = null;
  const servers: Array<http.Server | https.Server> = [];
  let handler: http.RequestListener | null = null;

  /** The owner check of one connection (issue 13 item 2), computed once per socket. */
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

  /**
   * The owner check's answer for `raw`'s connection: null (this user's, or unverifiable on this
   * platform, logged once), or the 403 `foreign_user` to send (logged once per distinct sentence, so
   * a flood from another user does not fill the log).
   */
  async function ownerRefusal(raw: http.IncomingMessage): Promise<StackFailure | null> {
    const verdict = await verdictFor(raw.socket);
    if (verdict.allow) {
      if (verdict.unverified && !unverifiedLogged) {
        unverifiedLogged = true;
        log.warn(
          { platform: process.platform },
          `${options.name}: cannot tell which user owns loopback connections on this platform; serving them unchecked`,
        );
      }
      return null;
    }
    if (!refusalsLogged.has(verdict.rejection.message)) {
      refusalsLogged.add(verdict.rejection.message);
      log.warn(
        { peerPort: raw.socket.remotePort, path: pathOf(raw.url) },
        `${options.name}: ${verdict.rejection.message}`,
      );
    }
    return verdict.rejection;
  }

  function createServer(listener: http.RequestListener): http.Server | https.Server {
    const limits = {
      headersTimeout: options.timeouts.headersMs,
      requestTimeout: options.timeouts.requestMs,
      keepAliveTimeout: options.timeouts.keepAliveMs,
      connectionsCheckingInterval: 1000,
      maxHeaderSize: 16 * 1024,
    };
    const server =
      options.tls === undefined
        ? http.createServer(limits, listener)
        : https.createServer(
            { ...limits, key: options.tls.key, cert: options.tls.cert, minVersion: "TLSv1.2" },
            listener,
          );
    server.maxHeadersCount = 64;
    // The owner check starts as soon as the connection is accepted, before its first request arrives.
    server.on(
      options.tls === undefined ? "connection" : "secureConnection",
      (socket: Socket) => void verdictFor(socket),
    );
    if (options.tls !== undefined)
      server.on("tlsClientError", (err: Error) =>
        log.debug({ err: err.message }, `${options.name}: TLS handshake failed`),
      );
    return server;
  }

  function refuse(request: FastifyRequest, reply: FastifyReply, failure: StackFailure): FastifyReply {
    const { status, body } = writeError(failure);
    // Set here too: an answer to a path the router cannot decode skips the onSend hook.
    void reply.headers(SECURITY_HEADERS);
    if (failure.headers !== undefined) void reply.headers(failure.headers);
    // An answer sent before the body was read: close, so the unread body is not parsed as a request.
    // Another user's connection is closed too: nothing more is served on it.
    if (!request.raw.complete || request.raw.headers.upgrade !== undefined || failure.code === "foreign_user")
      void reply.header("Connection", "close");
    return reply.code(status).send(body);
  }

  const app = Fastify<RawServerDefault>({
    loggerInstance: log,
    // No line per request: the Link logs refusals and failures itself.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit,
    // Our listeners are built and bound below (both addresses, one handler); Fastify routes their requests.
    serverFactory: (fastifyHandler) => {
      handler = fastifyHandler;
      const server = createServer(fastifyHandler);
      servers.push(server);
      return server;
    },
    // Slow or malformed requests, answered on the raw socket in this listener's shape.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => {
      if (err.code === "ECONNRESET" || socket.destroyed) return;
      const timeout = err.code === "ERR_HTTP_REQUEST_TIMEOUT";
      const tooLarge = err.code === "HPE_HEADER_OVERFLOW";
      const failure: StackFailure = timeout
        ? { status: 408, code: "request_timeout", message: "The request was not sent in time." }
        : tooLarge
          ? { status: 431, code: "bad_request", message: "The request's headers are too large." }
          : { status: 400, code: "bad_request", message: "The request is not valid HTTP." };
      const { status, body } = writeError(failure);
      const text = JSON.stringify(body);
      if (socket.writable) {
        const head = [
          `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? "Error"}`,
          ...Object.entries(SECURITY_HEADERS).map(([name, value]) => `${name}: ${value}`),
          "Content-Type: application/json; charset=utf-8",
          `Content-Length: ${Buffer.byteLength(text)}`,
          "Connection: close",
        ];
        socket.end(`${head.join("\r\n")}\r\n\r\n${text}`);
      } else socket.destroy();
    },
    // Paths are matched exactly: no trailing-slash or case folding, no routing on encoded separators.
    routerOptions: { ignoreTrailingSlash: false, caseSensitive: true, maxParamLength: 256 },
    return503OnClosing: true,
    // Bodies are validated by their zod schemas in the handlers (src/shared is the one schema); no route
    // has a Fastify schema. So Ajv and fast-json-stringify are never needed: these factories keep Fastify
    // from loading them at every start (about 60 ms of CPU, measured), and refuse a route schema loudly instead
    // of ignoring it.
    schemaController: {
      compilersFactory: {
        buildValidator: () => () => {
          throw new Error(`${options.name}: route schemas are not compiled here; parse with the route's zod schema`);
        },
        buildSerializer: () => () => {
          throw new Error(`${options.name}: response schemas are not compiled here; send JSON`);
        },
      },
    },
    // A path the router cannot decode skips the hooks in Fastify; the owner check still comes first.
    frameworkErrors: (err, request, reply) => {
      void ownerRefusal(request.raw).then((refusal) => refuse(request, reply, refusal ?? frameworkFailure(err)));
    },
  });

  if (options.websocket !== undefined) {
    const ws = options.websocket;
    void app.register(websocket, {
      options: {
        maxPayload: ws.maxPayload,
        perMessageDeflate: false,
        clientTracking: false,
        handleProtocols: (offered: Set<string>, request: http.IncomingMessage) =>
          ws.protocol(pathOf(request.url), offered),
      },
      // An error on an open socket (an unclean disconnect) ends it; the channel's own close handler runs.
      errorHandler: (_err: Error, socket: WebSocket) => socket.terminate(),
    });
  }

  app.addHook("onRequest", async (request, reply) => {
    const raw = request.raw;
    const refusal = await ownerRefusal(raw);
    if (refusal !== null) return refuse(request, reply, refusal);
    // Only origin-form targets (`/path?query`): an absolute-form target names a host the guard's Host
    // check would not see (RFC 9112 section 3.2.2), and `*` names no resource here.
    if (raw.url?.startsWith("/") !== true) {
      return refuse(request, reply, {
        status: 400,
        code: "bad_request",
        message: "The request target must be a path on this server, as in GET /healthz.",
      });
    }
    const config = request.routeOptions.config;
    if (policy !== null) {
      const rejection = checkRequest(
        raw.headers,
        (config.ownOrigin ?? options.ownOriginByDefault ?? false) ? policy.own : policy.none,
      );
      if (rejection !== null) {
        if (raw.headers.upgrade !== undefined)
          log.warn(
            { path: pathOf(raw.url), code: rejection.code, origin: raw.headers.origin, host: raw.headers.host },
            `${options.name}: upgrade refused`,
          );
        return refuse(request, reply, rejection);
      }
    }
    const pathname = pathOf(raw.url);
    // A route matches the path as sent: a static route only its exact path. The router would also
    // take a percent-encoded spelling of it (`/heal%74hz`), which no client of these endpoints sends.
    const routeUrl = request.routeOptions.url;
    const inexact = routeUrl !== undefined && !/[*:]/.test(routeUrl) && pathname !== routeUrl;
    if (request.is404 || inexact) {
      const method = raw.method ?? "GET";
      const allowed = methodsOf(app, pathname);
      const failure =
        options.unrouted?.(method, pathname, allowed) ??
        (allowed.length > 0
          ? {
              status: 405,
              code: "method_not_allowed" as const,
              message: `${method} is not supported on ${pathname.slice(0, 200)}.`,
              headers: { Allow: allowed.join(", ") },
            }
          : { status: 404, code: "not_found" as const, message: `No such endpoint: ${pathname.slice(0, 200)}` });
      return refuse(request, reply, failure);
    }
    const upgrade = raw.headers.upgrade !== undefined;
    if (upgrade && config.websocket !== true)
      return refuse(request, reply, {
        status: 404,
        code: "not_found",
        message: `No WebSocket endpoint at ${pathname.slice(0, 200)}`,
      });
    if (!upgrade && config.websocket === true)
      return refuse(request, reply, {
        status: 404,
        code: "not_found",
        message: `${pathname} is a WebSocket endpoint; connect with a WebSocket client.`,
      });
    return undefined;
  });

  app.addHook("onSend", async (_request, reply, payload) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS))
      if (!reply.hasHeader(name)) void reply.header(name, value);
    return payload;
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const failure = frameworkFailure(err);
    if (failure.status >= 500) log.error({ err: err.message, path: pathOf(request.raw.url) }, `${options.name} failed`);
    if (reply.sent || reply.raw.headersSent) {
      reply.raw.destroy();
      return;
    }
    void refuse(request, reply, failure);
  });

  // Unrouted requests are answered by the hook; this only covers a 404 route reached some other way.
  app.setNotFoundHandler((request, reply) =>
    refuse(request, reply, {
      status: 404,
      code: "not_found",
      message: `No such endpoint: ${pathOf(request.raw.url).slice(0, 200)}`,
    }),
  );

  async function listen(port: number, ipv6: boolean): Promise<{ port: number; fallback: boolean; hosts: string[] }> {
    await app.ready();
    const primary = servers[0];
    if (primary === undefined || handler === null) throw new Error(`${options.name}: the server was not created`);
    let bound: number;
    let fallback = false;
    try {
      bound = await bind(primary, port, "127.0.0.1");
    } catch (err) {
      if (port === 0 || !(err instanceof Error && "code" in err && err.code === "EADDRINUSE")) throw err;
      bound = await bind(primary, 0, "127.0.0.1");
      fallback = true;
      log.warn({ wanted: port, port: bound }, `${options.name}: preferred port in use; listening on a free port`);
    }
    const hostsAllowed = allowedHosts(bound);
    policy = {
      own: { port: bound, allowOwnOrigin: true, hosts: hostsAllowed, origins: ownOrigins(bound) },
      none: { port: bound, allowOwnOrigin: false, hosts: hostsAllowed, origins: new Set() },
    };
    const hosts = ["127.0.0.1"];
    if (ipv6) {
      const v6 = createServer(handler);
      // Upgrades on ::1 go through the same routing as those on 127.0.0.1 (@fastify/websocket listens on the primary).
      v6.on("upgrade", (...args: unknown[]) => primary.emit("upgrade", ...args));
      try {
        await bind(v6, bound, "::1");
        servers.push(v6);
        hosts.push("::1");
      } catch (err) {
        log.info({ err: err instanceof Error ? err.message : String(err) }, `${options.name}: not listening on ::1`);
      }
    }
    return { port: bound, fallback, hosts };
  }

  async function close(): Promise<void> {
    await Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.closeAllConnections();
            if (!server.listening) return resolve();
            server.close(() => resolve());
          }),
      ),
    );
    await app.close();
  }

  /** The response of each upgrade being routed, to release it from its socket once upgraded. */
  const upgradeResponses = new WeakMap<http.IncomingMessage, http.ServerResponse>();

  function websocketRoute(...[scope, url, route, open]: Parameters<LoopbackApp["websocketRoute"]>): void {
    scope.get(
      url,
      {
        websocket: true,
        config: { websocket: true, ...(route.ownOrigin !== undefined ? { ownOrigin: route.ownOrigin } : {}) },
        preHandler: async (request, reply) => {
          upgradeResponses.set(request.raw, reply.raw);
          return route.admit?.(request, reply);
        },
      },
      (ws, request) => {
        const raw = request.raw;
        // @fastify/websocket answered the upgrade through a ServerResponse assigned to the socket, and
        // its error listener closes over the request and reply: both would live as long as the
        // channel (about 10 KB a connection). Detach the one, replace the other.
        upgradeResponses.get(raw)?.detachSocket(raw.socket);
        upgradeResponses.delete(raw);
        ws.removeAllListeners("error");
        ws.on("error", () => ws.terminate());
        // @fastify/websocket types the socket as ws's `WebSocket` interface alias of the class; it is
        // the instance ws's own server created in handleUpgrade.
        // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
        open(ws, socketEnds(raw.socket));
      },
    );
  }

  function unlisten(): void {
    for (const server of servers) if (server.listening) server.close();
  }

  return { app, listen, websocketRoute, refuse, unlisten, close };
}

function bind(server: http.Server | https.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once("error", onError);
    server.listen({ port, host, exclusive: true }, () => {
      server.off("error", onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** The methods some route has for exactly `pathname` (empty: the path is unknown). */
function methodsOf(app: FastifyInstance, pathname: string): string[] {
  const methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
  return methods.filter((method) => app.hasRoute({ method, url: pathname }));
}
