/**
 * The client side of the control channel's protocol, independent of the socket: the CLI wires it to
 * a `ws` socket and the browser UI to the page's WebSocket. It authenticates with the token, matches
 * `result`/`error` replies to calls, validates every reply with the shared schemas, and hands pushed
 * events to listeners.
 */
import {
  ControlMethods,
  ControlServerMessageSchema,
  type ControlEvent,
  type ControlMethod,
  type ControlParams,
  type ControlResult,
} from "./control.js";
import { LinkError } from "./errors.js";

/** The two things the protocol needs from a socket. */
export interface ControlTransport {
  send(text: string): void;
  close(): void;
}

interface Waiting {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

export class ControlConnection {
  private readonly waiting = new Map<number, Waiting>();
  private readonly listeners = new Set<(event: ControlEvent) => void>();
  private nextId = 1;
  private authenticated = false;
  private closed = false;
  private settle: { resolve: () => void; reject: (err: Error) => void } | null = null;
  /** Resolves once the Link accepted the token; rejects if it refused it or the socket closed first. */
  readonly ready: Promise<void>;

  constructor(
    private readonly transport: ControlTransport,
    private readonly token: string,
  ) {
    this.ready = new Promise((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // Callers that only make calls see the failure there; do not report it twice as unhandled.
    this.ready.catch(() => undefined);
  }

  get isReady(): boolean {
    return this.authenticated && !this.closed;
  }

  /** The socket opened: send the token. */
  opened(): void {
    this.transport.send(JSON.stringify({ type: "auth", token: this.token }));
  }

  /** One text frame from the Link. Frames that are not valid control messages are ignored. */
  received(text: string): void {
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    const parsed = ControlServerMessageSchema.safeParse(frame);
    if (!parsed.success) return;
    const msg = parsed.data;
    switch (msg.type) {
      case "authenticated":
        this.authenticated = true;
        this.settle?.resolve();
        this.settle = null;
        return;
      case "event":
        for (const listener of this.listeners) listener(msg.event);
        return;
      case "result":
        this.take(msg.id)?.resolve(msg.result);
        return;
      case "error": {
        const err = new LinkError(msg.code, msg.message);
        if (msg.id === null) {
          this.settle?.reject(err);
          this.settle = null;
        } else this.take(msg.id)?.reject(err);
        return;
      }
    }
  }

  /** The socket closed or failed: every call in flight fails with `not_running`. */
  closedBy(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    const err = new LinkError("not_running", reason);
    this.settle?.reject(err);
    this.settle = null;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }

  call<M extends ControlMethod>(method: M, params: ControlParams<M>): Promise<ControlResult<M>> {
    if (this.closed) return Promise.reject(new LinkError("not_running", "The connection to Piper Link is closed."));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, {
        resolve: (value) => {
          const result = ControlMethods[method].result.safeParse(value);
          if (result.success) resolve(result.data as ControlResult<M>);
          else reject(new LinkError("internal_error", `Piper Link sent an invalid answer to ${method}.`));
        },
        reject,
      });
      this.transport.send(JSON.stringify({ type: "call", id, method, params }));
    });
  }

  subscribe(listener: (event: ControlEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.transport.close();
    this.closedBy("The connection to Piper Link was closed.");
  }

  private take(id: string | number): Waiting | undefined {
    const key = Number(id);
    const w = this.waiting.get(key);
    this.waiting.delete(key);
    return w;
  }
}
