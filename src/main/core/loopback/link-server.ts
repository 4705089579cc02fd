/**
 * The Link's loopback server (DESIGN.md section 3): one HTTP server per loopback address (127.0.0.1
 * and, when the machine has it, ::1) on the same port, carrying the compat HTTP endpoints and two
 * WebSocket channels, `/v1/link` for agents and `/v1/control` for the UI and CLI. It never binds a
 * non-loopback address. Liveness (handshake, idle, heartbeat) is checked by one sweeper timer for
 * all connections rather than timers per connection.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { WebSocketServer } from "ws";
import type { ControlEvent } from "../../../shared/control.js";
import { AGENT_SUBPROTOCOL, CONTROL_SUBPROTOCOL, LINK_VERSION } from "../../../shared/version.js";
import { CloseCode, type ContextPush } from "../../../shared/protocol.js";
import { socketEnds, type SocketEnds } from "../../../shared/socket-owner.js";
import { AgentChannel, type AgentHost, type ContextSnapshot } from "./agent-channel.js";
import { ControlChannel, type ControlHost } from "./control-channel.js";
import type { LinkLimits } from "./limits.js";
import { allowedHosts, checkRequest, ownOrigins, rejectUpgrade, SECURITY_HEADERS, sendError, sendJson, type GuardPolicy, type Rejection } from "./loopback-guard.js";
import type { PeerResolver } from "../process/peer-resolver.js";
import { socketOwner as procSocketOwner, type SocketOwner } from "../process/socket-table-linux.js";
import { checkPeerUser, isForeignProcess, type PeerUserVerdict } from "../process/user-guard.js";
import { serveUi } from "./ui-assets.js";
import type { SignInProxy } from "./sign-in-proxy.js";

export interface LinkServerOptions {
  /** Preferred port; when taken, the server falls back to a free one (port 0 asks for any). */
  port: number;
  limits: LinkLimits;
  agentHost: AgentHost;
  controlHost: ControlHost;
  peers: PeerResolver;
  /** Who owns a peer's socket (default: /proc/net/tcp{,6}); `peerPort` is the peer's local port. */
  socketOwner?: (ends: SocketEnds | null) => Promise<SocketOwner>;
  log: Logger;
  now(): number;
  /** The built browser UI served under /ui/ (null: not built in this install). */
  uiDir?: string | null;
  /** pyper-sdk's grant page (`GET /grant?...`): answers with an HTML page. */
  grantPage?: (query: URLSearchParams) => Promise<{ status: number; html: string }>;
  /** The embedded authority's sign-in pages on this origin (sign-in-proxy.ts); absent: not served. */
  signInProxy?: SignInProxy;
  /** Called (at most every 250 ms) when agents connect, say hello, or leave. */
  onAgentsChanged?: () => void;
}

export interface LinkServerAddress {
  port: number;
  /** True when `port` differs from the requested non-zero port because it was taken. */
  fallback: boolean;
  hosts: string[];
}

function listen(server: http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once("error", onError);
    server.listen({ port, host, exclusive: true }, () => {
      server.off("error", onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export class LinkServer {
  private readonly servers: http.Server[] = [];
  private readonly agentWss: WebSocketServer;
  private readonly controlWss: WebSocketServer;
  readonly agents = new Set<AgentChannel>();
  readonly controls = new Set<ControlChannel>();
  private sweeper: NodeJS.Timeout | null = null;
  private lastHeartbeat = 0;
  private port = 0;
  private hosts: ReadonlySet<string> = new Set();
  private origins: ReadonlySet<string> = new Set();
  /** One owner check per TCP connection, shared by every request on a keep-alive socket. */
  private readonly peerUsers = new WeakMap<Socket, Promise<PeerUserVerdict>>();
  private readonly ownUid: number | null = typeof process.getuid === "function" ? process.getuid() : null;
  private unverifiedLogged = false;
  private readonly foreignLogged = new Set<string>();

  constructor(private readonly options: LinkServerOptions) {
    // Frames up to 4x the limit are read so the guard can refuse them under their id (issue 16 item 7);
    // larger ones are cut off by ws itself with 1009.
    const common = { noServer: true, maxPayload: options.limits.maxFrameBytes * 4, perMessageDeflate: false, clientTracking: false };
    this.agentWss = new WebSocketServer({
      ...common,
      handleProtocols: (offered) => (offered.has(AGENT_SUBPROTOCOL) ? AGENT_SUBPROTOCOL : false),
    });
    this.controlWss = new WebSocketServer({
      ...common,
      handleProtocols: (offered) => (offered.has(CONTROL_SUBPROTOCOL) ? CONTROL_SUBPROTOCOL : false),
    });
  }

  async start(): Promise<LinkServerAddress> {
    const { log } = this.options;
    const primary = this.createHttpServer();
    let fallback = false;
    try {
      this.port = await listen(primary, this.options.port, "127.0.0.1");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE" || this.options.port === 0) throw err;
      this.port = await listen(primary, 0, "127.0.0.1");
      fallback = true;
      log.warn({ wanted: this.options.port, port: this.port }, "preferred port in use; listening on a free port");
    }
    this.servers.push(primary);
    this.hosts = allowedHosts(this.port);
    this.origins = ownOrigins(this.port);
    const hosts = ["127.0.0.1"];
    const v6 = this.createHttpServer();
    try {
      await listen(v6, this.port, "::1");
      this.servers.push(v6);
      hosts.push("::1");
    } catch (err) {
      log.info({ err: (err as Error).message }, "not listening on ::1");
    }
    this.sweeper = setInterval(() => this.sweep(), Math.min(1000, this.options.limits.handshakeTimeoutMs));
    this.sweeper.unref();
    this.lastHeartbeat = this.options.now();
    return { port: this.port, fallback, hosts };
  }

  /** Closes every connection with `code` (1001 on shutdown) and stops listening. */
  async stop(code: number = CloseCode.goingAway, reason = "Piper Link is shutting down"): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    if (this.agentsTimer) clearTimeout(this.agentsTimer);
    this.agentsTimer = null;
    const channels = [...this.agents, ...this.controls];
    const closed = channels.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.ws.readyState === s.ws.CLOSED) return resolve();
          const timer = setTimeout(() => {
            s.ws.terminate();
            resolve();
          }, 1000);
          s.ws.once("close", () => {
            clearTimeout(timer);
            resolve();
          });
          s.close(code, reason);
        }),
    );
    await Promise.all(closed);
    await Promise.all(
      this.servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      ),
    );
    this.servers.length = 0;
    await this.options.signInProxy?.close();
  }

  broadcastContext(push: ContextPush): void {
    for (const agent of this.agents) agent.pushContext(push);
  }

  broadcastEvent(event: ControlEvent): void {
    for (const control of this.controls) control.pushEvent(event);
  }

  private createHttpServer(): http.Server {
    // Slow clients (slowloris) and idle keep-alive sockets are cut off; timeouts are checked every second.
    const server = http.createServer(
      { headersTimeout: 5000, requestTimeout: 10_000, keepAliveTimeout: 5000, connectionsCheckingInterval: 1000, maxHeaderSize: 16 * 1024 },
      (req, res) => this.whenOwnUser(req, (r) => sendError(res, r, { Connection: "close" }), () => this.onRequest(req, res)),
    );
    server.maxHeadersCount = 64;
    // The owner check starts as soon as the connection is accepted, before its first request arrives.
    server.on("connection", (socket: Socket) => void this.peerUser(socket));
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on("error", () => socket.destroy());
      this.whenOwnUser(req, (r) => rejectUpgrade(socket, r), () => this.onUpgrade(req, socket, head));
    });
    server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
      const timeout = err.code === "ERR_HTTP_REQUEST_TIMEOUT";
      if (socket.writable) socket.end(`HTTP/1.1 ${timeout ? "408 Request Timeout" : "400 Bad Request"}\r\nConnection: close\r\n\r\n`);
      else socket.destroy();
    });
    return server;
  }

  /** The owner check of this connection (issue 13 item 2), computed once per socket. */
  private peerUser(socket: Socket): Promise<PeerUserVerdict> {
    let verdict = this.peerUsers.get(socket);
    if (verdict === undefined) {
      const lookup = this.options.socketOwner ?? procSocketOwner;
      verdict = lookup(socketEnds(socket)).then(
        (owner) => checkPeerUser(owner, this.ownUid),
        (): PeerUserVerdict => checkPeerUser({ uid: null, reason: "not_found" }, this.ownUid),
      );
      this.peerUsers.set(socket, verdict);
    }
    return verdict;
  }

  /** Runs `serve` only for a peer of this user; otherwise `refuse`s before anything is read or served. */
  private whenOwnUser(req: IncomingMessage, refuse: (r: Rejection) => void, serve: () => void): void {
    void this.peerUser(req.socket).then((verdict) => {
      if (verdict.allow) {
        if (verdict.unverified && !this.unverifiedLogged) {
          this.unverifiedLogged = true;
          this.options.log.warn({ platform: process.platform }, "cannot tell which user owns loopback connections on this platform; serving them unchecked");
        }
        return serve();
      }
      // Once per distinct refusal: a flood from another user must not fill the log.
      if (!this.foreignLogged.has(verdict.rejection.message)) {
        this.foreignLogged.add(verdict.rejection.message);
        this.options.log.warn({ peerPort: req.socket.remotePort, path: pathOf(req.url) }, verdict.rejection.message);
      }
      refuse(verdict.rejection);
    });
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const rejection = checkRequest(req, this.policy(true));
    if (rejection) return sendError(res, rejection);
    const pathname = pathOf(req.url);
    // The sign-in pages take form posts; the guard above has already refused foreign origins.
    const proxy = this.options.signInProxy;
    if (proxy?.handles(pathname) === true) return proxy.serve(req, res, pathname);
    if (req.method !== "GET" && req.method !== "HEAD") {
      return sendError(res, { status: 405, code: "method_not_allowed", message: "Only GET is supported here." }, { Allow: "GET, HEAD" });
    }
    const route = Object.hasOwn(ROUTES, pathname) ? ROUTES[pathname] : undefined;
    if (route !== undefined) return route(this.options.agentHost.context(), res);
    if (pathname === "/grant" && this.options.grantPage) return this.serveGrantPage(req, res, this.options.grantPage);
    if (serveUi(pathname, res, this.options.uiDir ?? null, this.port, req.method === "HEAD")) return;
    sendError(res, { status: 404, code: "not_found", message: `No such endpoint: ${pathname.slice(0, 200)}` });
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = pathOf(req.url);
    const isAgent = path === "/v1/link";
    if (!isAgent && path !== "/v1/control") {
      return rejectUpgrade(socket, { status: 404, code: "not_found", message: `No WebSocket endpoint at ${path}` });
    }
    const rejection: Rejection | null = checkRequest(req, this.policy(!isAgent));
    if (rejection) {
      this.options.log.warn({ path, code: rejection.code, origin: req.headers.origin, host: req.headers.host }, "upgrade refused");
      return rejectUpgrade(socket, rejection);
    }
    if (this.agents.size + this.controls.size >= this.options.limits.maxConnections) {
      return rejectUpgrade(socket, {
        status: 503,
        code: "too_many_connections",
        message: "Piper Link has reached its connection limit; try again later.",
      });
    }
    if (isAgent) {
      // Read here, not in the callback: a closure naming `req` would keep the whole request (headers,
      // parser state) alive for the connection's lifetime through the close listener's scope.
      const ends = socketEnds(req.socket);
      this.agentWss.handleUpgrade(req, socket, head, (ws) => {
        const channel = new AgentChannel(ws, ends, this.options.agentHost, this.options.limits);
        this.agents.add(channel);
        this.agentsChanged();
        ws.once("close", () => {
          this.agents.delete(channel);
          this.agentsChanged();
        });
        channel.identification = this.identify(channel);
      });
    } else {
      this.controlWss.handleUpgrade(req, socket, head, (ws) => {
        const channel = new ControlChannel(ws, this.options.controlHost, this.options.limits);
        this.controls.add(channel);
        ws.once("close", () => this.controls.delete(channel));
      });
    }
  }

  private serveGrantPage(req: IncomingMessage, res: ServerResponse, page: NonNullable<LinkServerOptions["grantPage"]>): void {
    const query = new URL(req.url ?? "/", "http://127.0.0.1").searchParams;
    page(query).then(
      ({ status, html }) => {
        res.writeHead(status, {
          ...SECURITY_HEADERS,
          "Content-Type": "text/html; charset=utf-8",
          "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        });
        res.end(req.method === "HEAD" ? undefined : html);
      },
      (err: unknown) => {
        this.options.log.error({ err: err instanceof Error ? err.message : String(err) }, "grant page failed");
        sendError(res, { status: 500, code: "internal_error", message: "Piper Link could not show this page; see its log." });
      },
    );
  }

  private agentsTimer: NodeJS.Timeout | null = null;

  /** Coalesces agent changes: with a thousand agents connecting, the UI hears about it a few times a second. */
  agentsChanged(): void {
    if (this.options.onAgentsChanged === undefined || this.agentsTimer !== null || this.controls.size === 0) return;
    this.agentsTimer = setTimeout(() => {
      this.agentsTimer = null;
      this.options.onAgentsChanged?.();
    }, 250);
    this.agentsTimer.unref();
  }

  private policy(allowOwnOrigin: boolean): GuardPolicy {
    return { port: this.port, allowOwnOrigin, hosts: this.hosts, origins: this.origins };
  }

  /** Finds the agent's process and enforces the per-process connection limit. */
  private async identify(channel: AgentChannel): Promise<void> {
    const info = channel.ends === null ? null : await this.options.peers.lookup(channel.ends);
    if (!this.agents.has(channel)) return;
    // The owner check let the connection in by its socket's uid; the process found holding the socket
    // must be this user's too (defence in depth: never bind a grant to another user's program).
    if (info !== null && isForeignProcess(info, this.ownUid)) {
      this.options.log.warn({ pid: info.pid, uid: info.uid }, "agent connection held by another user's process; closed");
      channel.close(CloseCode.foreignUser, "this connection belongs to another user's process");
      return;
    }
    channel.process = info;
    channel.peer = info;
    channel.recheckPeer = this.options.peers.recheck === undefined ? null : (p) => this.options.peers.recheck?.(p) ?? Promise.resolve(p);
    if (info === null) return;
    let count = 0;
    for (const other of this.agents) if (other.process?.pid === info.pid) count += 1;
    if (count > this.options.limits.maxConnectionsPerProcess) {
      this.options.log.warn({ pid: info.pid, count }, "per-process connection limit reached");
      channel.close(CloseCode.tooManyConnections, "too many connections from this process");
    }
  }

  private sweep(): void {
    const now = this.options.now();
    const { handshakeTimeoutMs, idleTimeoutMs, heartbeatIntervalMs } = this.options.limits;
    const heartbeat = now - this.lastHeartbeat >= heartbeatIntervalMs;
    if (heartbeat) this.lastHeartbeat = now;
    const channels: Array<AgentChannel | ControlChannel> = [...this.agents, ...this.controls];
    for (const s of channels) {
      const ready = s instanceof AgentChannel ? s.helloed : s.authenticated;
      if (!ready && now - s.connectedAt > handshakeTimeoutMs) s.close(CloseCode.handshakeTimeout, "handshake timeout");
      // Idle only once it said hello: before that the handshake timeout applies, and a hello still being
      // answered (the process looked up and hashed) is the Link's wait, not the agent's silence.
      else if (ready && now - s.lastActivity > idleTimeoutMs) s.close(CloseCode.idleTimeout, "idle timeout");
      else if (heartbeat) {
        if (!s.alive) {
          s.ws.terminate();
          continue;
        }
        s.alive = false;
        s.ws.ping();
      }
    }
  }
}

/** The path of a request target, without query or fragment. */
function pathOf(url: string | undefined): string {
  const raw = url ?? "/";
  const end = raw.search(/[?#]/);
  return end < 0 ? raw : raw.slice(0, end);
}

type Route = (context: ContextSnapshot, res: ServerResponse) => void;

const ROUTES: Record<string, Route> = {
  "/piper-link-context": (context, res) => {
    if (context.state === "ready") sendJson(res, 200, { instanceId: context.instanceId });
    else sendJson(res, 503, { error: context.error.code, message: context.error.message });
  },
  "/healthz": (context, res) => sendJson(res, 200, { status: "ok", version: LINK_VERSION, state: context.state }),
};
