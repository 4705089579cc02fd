/**
 * One agent's WebSocket connection on `/v1/link`: the agent protocol of DESIGN.md section 4.
 * `hello` -> `welcome` (or `not_logged_in`), `context` pushes after hello, and `resolve`, which the
 * host answers, `call` / `cancel` (calls made for the agent, core/calls/), and `grants` (the names
 * of this agent's live grants, for the MCP server's `list_secrets`), `requestAccess` (ask the person
 * for a use without making the call, for its `request_access`). Bad frames get an
 * `error` frame; too many close the connection with a documented code.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { RawData, WebSocket } from "ws";
import type { Call } from "../../../shared/calls.js";
import type { AgentConnection, PeerProcess } from "../../../shared/control.js";
import { isRetryable, LinkError, type ErrorCode } from "../../../shared/errors.js";
import {
  AGENT_MESSAGE_TYPES,
  AgentMessageSchema,
  type ActingFor,
  type AgentMessage,
  type AgentGrant,
  type CheckRequest,
  type ContextPush,
  type GrantsRequest,
  type Hello,
  type LinkMessage,
  type RequestAccess,
  type RequestId,
  type Resolve,
  type ResolveMany,
} from "../../../shared/protocol.js";
import { LINK_VERSION, PROTOCOL_VERSION } from "../../../shared/version.js";
import { describeIssues } from "./frame-guard.js";
import type { LinkLimits } from "./limits.js";
import { ChannelBase } from "./channel-base.js";
import type { SocketEnds } from "../../../shared/socket-owner.js";
import type { Requester } from "../process/requester.js";

/** The Link's context as agents see it. */
export type ContextSnapshot =
  { state: "ready"; instanceId: string } | { state: "logged_out"; error: { code: ErrorCode; message: string } };

export interface AgentHost {
  now(): number;
  context(): ContextSnapshot;
  authorityUrl(): string | null;
  /**
   * Answers a `resolve` or `resolveMany` from a connection that said hello while the Link is signed
   * in; may send several frames (`pending`, then `secret` / `secrets` or `error`). `signal` aborts
   * when the connection closes.
   */
  resolve(
    requester: Requester,
    request: Resolve | ResolveMany,
    send: (message: LinkMessage) => void,
    signal: AbortSignal,
  ): Promise<void>;
  /**
   * Performs a `call` for the agent (core/calls/): sends `pending`, `call.head`, `call.chunk`s and
   * `call.end`, or an `error`. `signal` aborts when the agent cancels the call or disconnects.
   * Absent: calls are answered with `not_implemented`.
   */
  call?(requester: Requester, request: Call, send: (message: LinkMessage) => void, signal: AbortSignal): Promise<void>;
  /**
   * Answers `grants`: the live grants of this connection's agent (its client ID, this instance; a
   * process-bound grant only when it is this connection's process). Absent: `not_implemented`.
   */
  grants?(requester: Requester): Promise<AgentGrant[]>;
  /**
   * Answers `validate`, `metadata` and `permissionCheck` (checks without the value) with their
   * reply frame; rejects with a LinkError to answer with an `error`. Absent: `not_implemented`.
   */
  checks?(requester: Requester, request: CheckRequest): Promise<LinkMessage>;
  /**
   * Answers `requestAccess` (calls/access-request.ts) with one `access` or `error` frame; never a
   * value. Absent: `not_implemented`.
   */
  requestAccess?(requester: Requester, request: RequestAccess, send: (message: LinkMessage) => void): Promise<void>;
  log: Logger;
  /** Told when an agent introduces itself, so the UI's list of agents can follow. */
  agentIdentified?(): void;
  /**
   * The identity to use for a peer that claims `hello.actingFor` (process/acting-for.ts), or null
   * when the claim is not honoured. Absent: claims are ignored.
   */
  actingFor?(peer: PeerProcess, claim: ActingFor): Promise<PeerProcess | null>;
}

/** How many requests an agent may pipeline behind its `hello` before the Link answers it. */
const MAX_QUEUED_BEHIND_HELLO = 64;

/**
 * Calls one connection may have running at once (waiting for approval or streaming). Each streaming
 * call holds an upstream connection and up to a socket's worth of its answer; beyond this the call
 * is refused with `rate_limited` (retryable once one ends).
 */
export const MAX_CALLS_PER_CONNECTION = 16;

/**
 * Bytes the Link lets wait in an agent's socket (ws's `bufferedAmount`) before a call's answer stops
 * being read from the upstream (`writable()`): an agent that does not read its answers holds the
 * upstream back, not the Link's memory.
 */
const AGENT_HIGH_WATER_BYTES = 1024 * 1024;

/** One agent's connection; it is the `Requester` of every request it carries. */
export class AgentChannel extends ChannelBase implements Requester {
  readonly connectionId = `conn_${randomUUID()}`;
  agent: Hello["agent"] | null = null;
  process: PeerProcess | null = null;
  /** The process the OS reports on the other end (what `process` was before an honoured `actingFor`). */
  peer: PeerProcess | null = null;
  /**
   * Re-reads an identity before each use (process/identify-linux.ts `recheckLinuxProcess`): the same object
   * while nothing changed, a fresh one when the program changed, null when the process is gone.
   * Null: identities are not re-checked.
   */
  recheckPeer: ((p: PeerProcess) => Promise<PeerProcess | null>) | null = null;
  /** Set when `process` is whom Piper Link's own command asks for (`run`: the command; `mcp`: its parent). */
  actingFor: ActingFor["kind"] | null = null;
  /** Requests after hello run in arrival order, each after the identity was re-checked. */
  private ordered: Promise<void> = Promise.resolve();
  /** Settles once the peer process lookup is done (it runs in the background after connect). */
  identification: Promise<void> = Promise.resolve();
  /** Requests that arrived while `hello` was still being answered; dispatched right after it. */
  private queued: Array<Exclude<AgentMessage, Hello>> = [];
  /** True while a `hello` waits for the peer identification before it is answered. */
  private helloPending = false;
  /** Aborted when the connection closes, so waits on its behalf stop. */
  private readonly closing = new AbortController();
  /** Calls in progress by request id, so `cancel` (or the close) can abort them. */
  private readonly calls = new Map<string, AbortController>();
  /** The last frame sent past the high-water mark, until it has been written (see `writable`). */
  private lastFlush: Promise<void> | null = null;

  constructor(
    ws: WebSocket,
    /** The connection's endpoints, as the Link's socket named them when it was accepted (null: already gone). */
    readonly ends: SocketEnds | null,
    private readonly host: AgentHost,
    limits: LinkLimits,
  ) {
    super(ws, () => host.now(), limits, host.log, "agent");
    ws.once("close", () => this.closing.abort());
  }

  get signal(): AbortSignal {
    return this.closing.signal;
  }

  get helloed(): boolean {
    return this.agent !== null;
  }

  describe(): AgentConnection {
    return {
      connectionId: this.connectionId,
      clientId: this.agent?.clientId ?? null,
      name: this.agent?.name ?? null,
      connectedAt: new Date(this.connectedAt).toISOString(),
      remotePort: this.ends?.peerPort ?? 0,
      process: this.process,
    };
  }

  send(message: LinkMessage): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    const data = JSON.stringify(message);
    if (this.ws.bufferedAmount + data.length <= AGENT_HIGH_WATER_BYTES) {
      this.ws.send(data);
      return;
    }
    // Past the high-water mark: remember when this frame (and so every earlier one) has left for
    // the socket; ws calls back on close too, so a waiter never outlives the connection.
    const flushed = new Promise<void>((resolve) => this.ws.send(data, () => resolve()));
    this.lastFlush = flushed;
    void flushed.then(() => {
      if (this.lastFlush === flushed) this.lastFlush = null;
    });
  }

  /**
   * Resolves once the agent's socket holds at most about AGENT_HIGH_WATER_BYTES (at once when it
   * does, or when the connection has closed). Calls await it before each piece of an answer, so the
   * upstream is read only as fast as the agent reads.
   */
  async writable(): Promise<void> {
    while (
      this.ws.readyState === this.ws.OPEN &&
      this.ws.bufferedAmount > AGENT_HIGH_WATER_BYTES &&
      this.lastFlush !== null
    )
      await this.lastFlush;
  }

  sendError(id: RequestId | null, code: ErrorCode, message: string): void {
    this.send({ type: "error", id, code, message, retryable: isRetryable(code) });
  }

  pushContext(push: ContextPush): void {
    if (this.helloed) this.send(push);
  }

  protected onFrame(data: RawData, isBinary: boolean): void {
    let verdict = this.guard.read(data, isBinary);
    if (verdict.kind === "frame") {
      const type = verdict.value["type"] as string;
      if (!AGENT_MESSAGE_TYPES.has(type)) {
        verdict = this.guard.invalid(
          verdict.id,
          "unknown_type",
          `Unknown message type ${JSON.stringify(type.slice(0, 64))}.`,
        );
      } else {
        const parsed = AgentMessageSchema.safeParse(verdict.value);
        if (parsed.success) {
          this.dispatch(parsed.data);
          return;
        }
        verdict = this.guard.invalid(
          verdict.id,
          "bad_request",
          `Invalid ${type}: ${describeIssues(parsed.error.issues)}`,
        );
      }
    }
    if (verdict.kind === "close") {
      this.host.log.warn({ conn: this.connectionId, reason: verdict.reason }, "closing agent connection");
      this.close(verdict.closeCode, verdict.reason);
    } else if (verdict.kind === "reject") {
      this.sendError(verdict.id, verdict.code, verdict.message);
    }
  }

  private dispatch(message: AgentMessage): void {
    if (message.type === "hello") {
      this.onHello(message);
      return;
    }
    // Agents may send requests right behind their hello (pipelined); they wait for its answer.
    if (this.helloPending) {
      if (this.queued.length >= MAX_QUEUED_BEHIND_HELLO) {
        this.sendError(message.id, "rate_limited", "Too many requests sent before the Link answered `hello`.");
        return;
      }
      this.queued.push(message);
      return;
    }
    if (!this.helloed) {
      this.sendError(message.id, "hello_required", `Send \`hello\` first, then \`${message.type}\`.`);
      return;
    }
    // The program is checked again on every request, not only at hello: a process that exec'd
    // another program, or whose script changed, is not the one a grant was approved for.
    this.ordered = this.ordered
      .then(() => this.refreshIdentity())
      .catch((err: unknown) => {
        this.host.log.warn(
          { conn: this.connectionId, err: err instanceof Error ? err.message : String(err) },
          "identity re-check failed; the connection is unidentified",
        );
        this.process = null;
        this.peer = null;
      })
      .then(() => this.handle(message));
  }

  /**
   * Re-checks the peer (and the parent a `piper-link mcp` asked for) and follows what changed. A
   * changed peer loses an honoured `actingFor`: the claim was checked against the program that made it.
   */
  private async refreshIdentity(): Promise<void> {
    const recheck = this.recheckPeer;
    const peer = this.peer;
    if (recheck === null || peer === null) return;
    const now = await recheck(peer);
    if (now !== peer) {
      if (now === null || now.startTime !== peer.startTime)
        this.host.log.warn(
          { conn: this.connectionId, pid: peer.pid },
          "the process that said hello is gone; the connection is unidentified",
        );
      else
        this.host.log.warn({ conn: this.connectionId, pid: peer.pid }, "the connection's program changed since hello");
      this.peer = now;
      this.process = now;
      this.actingFor = null;
      return;
    }
    if (this.actingFor === "parent" && this.process !== null) {
      const parent = await recheck(this.process);
      // What the walk past launchers found about the chain (reached through npx) stays with the client.
      const note = this.process.unverifiable ?? null;
      if (parent !== this.process)
        this.process = parent === null ? null : { ...parent, unverifiable: parent.unverifiable ?? note };
    }
  }

  private handle(message: Exclude<AgentMessage, Hello>): void {
    if (message.type === "cancel") {
      this.calls.get(String(message.id))?.abort();
      return;
    }
    const context = this.host.context();
    if (context.state !== "ready") {
      this.sendError(message.id, context.error.code, context.error.message);
      return;
    }
    if (message.type === "call") {
      this.startCall(message);
      return;
    }
    if (message.type === "grants") {
      this.listGrants(message);
      return;
    }
    if (message.type === "validate" || message.type === "metadata" || message.type === "permissionCheck") {
      this.answerCheck(message);
      return;
    }
    if (message.type === "requestAccess") {
      this.requestAccess(message);
      return;
    }
    this.host
      .resolve(this, message, (reply) => this.send(reply), this.signal)
      .then(
        () => undefined,
        (err: unknown) => {
          this.host.log.error(
            { conn: this.connectionId, err: err instanceof Error ? err.message : String(err) },
            "resolve failed",
          );
          this.sendError(message.id, "internal_error", "Piper Link could not answer this request; see its log.");
        },
      );
  }

  private listGrants(message: GrantsRequest): void {
    if (this.host.grants === undefined) {
      this.sendError(message.id, "not_implemented", "This Piper Link does not list grants to agents.");
      return;
    }
    this.host.grants(this).then(
      (grants) => this.send({ type: "grants.list", id: message.id, grants }),
      (err: unknown) => {
        const code: ErrorCode = err instanceof LinkError ? err.code : "authority_unavailable";
        this.host.log.warn(
          { conn: this.connectionId, err: err instanceof Error ? err.message : String(err) },
          "grants failed",
        );
        this.sendError(
          message.id,
          code,
          err instanceof LinkError
            ? err.message
            : "Piper Link could not reach its authority to list this agent's grants; try again.",
        );
      },
    );
  }

  private answerCheck(message: CheckRequest): void {
    if (this.host.checks === undefined) {
      this.sendError(message.id, "not_implemented", `This Piper Link does not answer \`${message.type}\`.`);
      return;
    }
    this.host.checks(this, message).then(
      (reply) => this.send(reply),
      (err: unknown) => {
        const code: ErrorCode = err instanceof LinkError ? err.code : "authority_unavailable";
        if (code !== "secret_not_found")
          this.host.log.warn(
            { conn: this.connectionId, check: message.type, err: err instanceof Error ? err.message : String(err) },
            "check failed",
          );
        this.sendError(
          message.id,
          code,
          err instanceof LinkError
            ? err.message
            : "Piper Link could not reach its authority for this check; try again.",
        );
      },
    );
  }

  private requestAccess(message: RequestAccess): void {
    if (this.host.requestAccess === undefined) {
      this.sendError(message.id, "not_implemented", "This Piper Link does not take access requests from agents.");
      return;
    }
    this.host
      .requestAccess(this, message, (reply) => this.send(reply))
      .catch((err: unknown) => {
        this.host.log.error(
          { conn: this.connectionId, err: err instanceof Error ? err.message : String(err) },
          "requestAccess failed",
        );
        this.sendError(message.id, "internal_error", "Piper Link could not ask for access; see its log.");
      });
  }

  private startCall(message: Call): void {
    const key = String(message.id);
    if (this.host.call === undefined) {
      this.sendError(message.id, "not_implemented", "This Piper Link does not make calls for agents.");
      return;
    }
    if (this.calls.has(key)) {
      this.sendError(message.id, "bad_request", "A call with this id is already running on this connection.");
      return;
    }
    if (this.calls.size >= MAX_CALLS_PER_CONNECTION) {
      this.sendError(
        message.id,
        "rate_limited",
        `At most ${MAX_CALLS_PER_CONNECTION} calls run at once on one connection; read or cancel one, then try again.`,
      );
      return;
    }
    const abort = new AbortController();
    this.calls.set(key, abort);
    const onClose = (): void => abort.abort();
    this.signal.addEventListener("abort", onClose, { once: true });
    this.host
      .call(
        this,
        message,
        (reply) => {
          // After a cancel the agent hears nothing more about this call.
          if (!abort.signal.aborted) this.send(reply);
        },
        abort.signal,
      )
      .catch((err: unknown) => {
        this.host.log.error(
          { conn: this.connectionId, err: err instanceof Error ? err.message : String(err) },
          "call failed",
        );
        if (!abort.signal.aborted)
          this.sendError(message.id, "internal_error", "Piper Link could not make this call; see its log.");
      })
      .finally(() => {
        this.signal.removeEventListener("abort", onClose);
        if (this.calls.get(key) === abort) this.calls.delete(key);
      });
  }

  /**
   * Answers `hello` only once the peer process is known, because the per-process connection cap is
   * checked then (link-server.ts `identify`): a connection over the cap is closed with 4005 before it
   * ever receives `welcome` (issue 16 item 11). The lookup usually finished before the hello arrives.
   */
  private onHello(hello: Hello): void {
    if (this.helloPending) {
      this.sendError(hello.id, "bad_request", "A `hello` is already being answered on this connection.");
      return;
    }
    this.helloPending = true;
    void this.identification
      .then(() => this.applyActingFor(hello))
      .then(
        () => this.answerHello(hello),
        () => this.answerHello(hello),
      );
  }

  /** Swaps in the identity of whom one of Piper Link's own commands asks for, when the Link honours it. */
  private async applyActingFor(hello: Hello): Promise<void> {
    const claim = hello.actingFor;
    if (claim === undefined || this.process === null || this.host.actingFor === undefined) return;
    const identity = await this.host.actingFor(this.process, claim);
    if (identity === null) {
      this.host.log.warn(
        { conn: this.connectionId, claim: claim.kind },
        "actingFor ignored: the peer is not Piper Link's own command",
      );
      return;
    }
    this.actingFor = claim.kind;
    this.process = identity;
  }

  private answerHello(hello: Hello): void {
    this.helloPending = false;
    const queued = this.queued;
    this.queued = [];
    this.answerHelloNow(hello);
    for (const message of queued) this.dispatch(message);
  }

  private answerHelloNow(hello: Hello): void {
    // Refused while the process was identified (over the per-process cap): no welcome, ever.
    if (this.ws.readyState !== this.ws.OPEN || this.signal.aborted) return;
    if (hello.protocol !== PROTOCOL_VERSION) {
      this.sendError(
        hello.id,
        "unsupported_protocol",
        `This Piper Link (${LINK_VERSION}) speaks protocol ${PROTOCOL_VERSION}; the agent asked for ${hello.protocol}. Update the SDK or the Link.`,
      );
      return;
    }
    this.agent = hello.agent;
    this.host.agentIdentified?.();
    this.host.log.info({ conn: this.connectionId, clientId: hello.agent.clientId, sdk: hello.sdk }, "agent hello");
    const context = this.host.context();
    if (context.state === "ready") {
      this.send({
        type: "welcome",
        id: hello.id,
        instanceId: context.instanceId,
        link: { version: LINK_VERSION },
        authority: this.host.authorityUrl(),
      });
    } else {
      this.sendError(hello.id, context.error.code, context.error.message);
    }
  }
}
