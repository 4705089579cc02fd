/**
 * The Link's loopback server (DESIGN.md section 3) on the one HTTP stack of loopback-http.ts: one
 * listener per loopback address (127.0.0.1 and, when the machine has it, ::1) on the same port,
 * carrying the compat HTTP endpoints, the browser window, the embedded authority's sign-in pages and
 * two WebSocket channels, `/v1/link` for agents and `/v1/control` for the UI and CLI. It never binds
 * a non-loopback address. Liveness (handshake, idle, heartbeat) is checked by one sweeper timer for
 * all connections rather than timers per connection.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "pino";
import type { WebSocket } from "ws";
import type { ControlEvent } from "../../../shared/control.js";
import { AGENT_SUBPROTOCOL, CONTROL_SUBPROTOCOL, LINK_VERSION } from "../../../shared/version.js";
import { CloseCode, type ContextPush } from "../../../shared/protocol.js";
import type { SocketEnds } from "../../../shared/socket-owner.js";
import { AgentChannel, type AgentHost, type ContextSnapshot } from "./agent-channel.js";
import { ControlChannel, type ControlHost } from "./control-channel.js";
import type { LinkLimits } from "./limits.js";
import { createLoopbackApp, linkErrorWriter, type LoopbackApp } from "./loopback-http.js";
import type { PeerResolver } from "../process/peer-resolver.js";
import type { SocketOwner } from "../process/socket-table-linux.js";
import { isForeignProcess } from "../process/user-guard.js";
import { addUiRoutes } from "./ui-assets.js";
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

export class LinkServer {
  private readonly http: LoopbackApp;
  readonly agents = new Set<AgentChannel>();
  readonly controls = new Set<ControlChannel>();
  private sweeper: NodeJS.Timeout | null = null;
  private lastHeartbeat = 0;
  private port = 0;
  private readonly ownUid: number | null = typeof process.getuid === "function" ? process.getuid() : null;

  constructor(private readonly options: LinkServerOptions) {
    this.http = createLoopbackApp({
      name: "loopback server",
      log: options.log,
      // Slow clients (slowloris) and idle keep-alive sockets are cut off; timeouts are checked every second.
      timeouts: { headersMs: 5000, requestMs: 10_000, keepAliveMs: 5000 },
      bodyLimit: 16 * 1024,
      ...(options.socketOwner !== undefined ? { socketOwner: options.socketOwner } : {}),
      writeError: linkErrorWriter,
      // Every HTTP endpoint takes the Link's own pages (the window runs on this origin); the agent channel none.
      ownOriginByDefault: true,
      // Anything but GET and HEAD outside the sign-in forms is 405, whatever the path (the endpoints are read-only).
      unrouted: (method, pathname, allowed) =>
        method !== "GET" && method !== "HEAD"
          ? {
              status: 405,
              code: "method_not_allowed",
              message:
                allowed.length > 0
                  ? `${method} is not supported on ${pathname.slice(0, 200)}.`
                  : "Only GET is supported here.",
              headers: { Allow: allowed.length > 0 ? allowed.join(", ") : "GET, HEAD" },
            }
          : { status: 404, code: "not_found", message: `No such endpoint: ${pathname.slice(0, 200)}` },
      websocket: {
        // Frames up to 4x the limit are read so the guard can refuse them under their id (issue 16 item 7);
        // larger ones are cut off by ws itself with 1009.
        maxPayload: options.limits.maxFrameBytes * 4,
        protocol: (pathname, offered) => {
          const wanted =
            pathname === "/v1/link" ? AGENT_SUBPROTOCOL : pathname === "/v1/control" ? CONTROL_SUBPROTOCOL : null;
          return wanted !== null && offered.has(wanted) ? wanted : false;
        },
      },
    });
    // In a plugin of its own, so the routes are added after @fastify/websocket has hooked route creation.
    void this.http.app.register((scope, _options, done) => {
      this.routes(scope);
      done();
    });
  }

  private routes(app: FastifyInstance): void {
    const { refuse } = this.http;
    // No body parser: the only routes that take a body are the sign-in forms, in their own scope.
    app.removeAllContentTypeParsers();
    app.get("/piper-link-context", async (_request, reply) => {
      const context = this.options.agentHost.context();
      return context.state === "ready"
        ? reply.send({ instanceId: context.instanceId })
        : reply.code(503).send({ error: context.error.code, message: context.error.message });
    });
    app.get("/healthz", async (_request, reply) => {
      const context: ContextSnapshot = this.options.agentHost.context();
      return reply.send({ status: "ok", version: LINK_VERSION, state: context.state });
    });
    const grantPage = this.options.grantPage;
    if (grantPage !== undefined) {
      app.get("/grant", async (request, reply) => {
        const query = new URL(request.url, "http://127.0.0.1").searchParams;
        try {
          const { status, html } = await grantPage(query);
          return await reply
            .code(status)
            .header("Content-Type", "text/html; charset=utf-8")
            .header(
              "Content-Security-Policy",
              "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            )
            .send(html);
        } catch (err) {
          this.options.log.error({ err: err instanceof Error ? err.message : String(err) }, "grant page failed");
          return await refuse(request, reply, {
            status: 500,
            code: "internal_error",
            message: "Piper Link could not show this page; see its log.",
          });
        }
      });
    }
    this.options.signInProxy?.addRoutes(app, refuse);
    addUiRoutes(app, this.options.uiDir ?? null, () => this.port, refuse);
    // The agent channel takes no Origin at all (agents are not browsers); the control channel the Link's own pages.
    const channelLimit = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
      if (this.agents.size + this.controls.size < this.options.limits.maxConnections) return undefined;
      return refuse(request, reply, {
        status: 503,
        code: "too_many_connections",
        message: "Piper Link has reached its connection limit; try again later.",
      });
    };
    this.http.websocketRoute(app, "/v1/link", { ownOrigin: false, admit: channelLimit }, (ws, ends) =>
      this.agentConnected(ws, ends),
    );
    this.http.websocketRoute(app, "/v1/control", { admit: channelLimit }, (ws) => this.controlConnected(ws));
  }

  private agentConnected(ws: WebSocket, ends: SocketEnds | null): void {
    const channel = new AgentChannel(ws, ends, this.options.agentHost, this.options.limits);
    this.agents.add(channel);
    this.agentsChanged();
    ws.once("close", () => {
      this.agents.delete(channel);
      this.agentsChanged();
    });
    channel.identification = this.identify(channel);
  }

  private controlConnected(ws: WebSocket): void {
    const channel = new ControlChannel(ws, this.options.controlHost, this.options.limits);
    this.controls.add(channel);
    ws.once("close", () => this.controls.delete(channel));
  }

  async start(): Promise<LinkServerAddress> {
    const address = await this.http.listen(this.options.port, true);
    this.port = address.port;
    this.sweeper = setInterval(() => this.sweep(), Math.min(1000, this.options.limits.handshakeTimeoutMs));
    this.sweeper.unref();
    this.lastHeartbeat = this.options.now();
    return address;
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
    await this.http.close();
    await this.options.signInProxy?.close();
  }

  broadcastContext(push: ContextPush): void {
    for (const agent of this.agents) agent.pushContext(push);
  }

  broadcastEvent(event: ControlEvent): void {
    for (const control of this.controls) control.pushEvent(event);
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

  /** Finds the agent's process and enforces the per-process connection limit. */
  private async identify(channel: AgentChannel): Promise<void> {
    const info = channel.ends === null ? null : await this.options.peers.lookup(channel.ends);
    if (!this.agents.has(channel)) return;
    // The owner check let the connection in by its socket's uid; the process found holding the socket
    // must be this user's too (defence in depth: never bind a grant to another user's program).
    if (info !== null && isForeignProcess(info, this.ownUid)) {
      this.options.log.warn(
        { pid: info.pid, uid: info.uid },
        "agent connection held by another user's process; closed",
      );
      channel.close(CloseCode.foreignUser, "this connection belongs to another user's process");
      return;
    }
    channel.process = info;
    channel.peer = info;
    channel.recheckPeer =
      this.options.peers.recheck === undefined ? null : (p) => this.options.peers.recheck?.(p) ?? Promise.resolve(p);
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
