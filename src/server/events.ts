/**
 * Events between the authority's parts and processes: new requests, decisions, grant and secret
 * changes. With SQLite (one process) an in-process emitter; with PostgreSQL every publish is a
 * NOTIFY and every process LISTENs, so several authority processes on one database see each
 * other's changes (waiting agents and event streams wake up wherever the change was made).
 */
import { EventEmitter } from "node:events";
import pg from "pg";
import { AuthorityEventSchema, type AuthorityEvent } from "../shared/authority.js";

export interface EventBus {
  publish(event: AuthorityEvent): Promise<void>;
  subscribe(listener: (event: AuthorityEvent) => void): () => void;
  close(): Promise<void>;
}

const CHANNEL = "piper_events";

export function createLocalBus(): EventBus {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  return {
    publish(event) {
      emitter.emit("event", event);
      return Promise.resolve();
    },
    subscribe(listener) {
      emitter.on("event", listener);
      return () => emitter.off("event", listener);
    },
    close: () => Promise.resolve(),
  };
}

export async function createPostgresBus(url: string, onError: (err: Error) => void): Promise<EventBus> {
  const local = createLocalBus();
  const listener = new pg.Client({ connectionString: url });
  const publisher = new pg.Client({ connectionString: url });
  await listener.connect();
  await publisher.connect();
  listener.on("error", onError);
  publisher.on("error", onError);
  listener.on("notification", (msg) => {
    if (msg.channel !== CHANNEL || msg.payload === undefined) return;
    try {
      void local.publish(AuthorityEventSchema.parse(JSON.parse(msg.payload)));
    } catch (err) {
      onError(err instanceof Error ? err : new Error(String(err)));
    }
  });
  await listener.query(`LISTEN ${CHANNEL}`);
  return {
    async publish(event) {
      await publisher.query("SELECT pg_notify($1, $2)", [CHANNEL, JSON.stringify(event)]);
    },
    subscribe: (listener) => local.subscribe(listener),
    async close() {
      await listener.end().catch(() => undefined);
      await publisher.end().catch(() => undefined);
    },
  };
}

/** One open event stream, as the registry tracks it. */
export interface OpenStream {
  /** The credential that opened it; the stream lives only while this still names a user. */
  readonly token: string;
  /** Ends the response (the client sees the stream end and reconnects with a fresh token). */
  end(reason: string): void;
}

/**
 * The open `/v1/events` streams of one authority process (issue 16 items 12 and 15): each is
 * re-checked against its credential every `recheckMs` (so a token revoked by another process, or
 * one that expired, ends its stream within that time), at once after `/oauth/revoke` in this process
 * (`recheckNow`), and all of them end on shutdown (`endAll`), so a SIGTERM is not held up by a
 * Link's open stream.
 */
export interface StreamRegistry {
  add(stream: OpenStream): () => void;
  recheckNow(): Promise<void>;
  endAll(reason: string): void;
  readonly size: number;
}

/**
 * `userFor(token)` answers who a credential names now (null: revoked, expired or unknown); its
 * failures keep the stream open until the next check. `recheckMs` defaults to 5,000.
 */
export function createStreamRegistry(userFor: (token: string) => Promise<string | null>, recheckMs = 5000): StreamRegistry {
  const streams = new Set<OpenStream>();
  let timer: NodeJS.Timeout | null = null;
  let checking: Promise<void> | null = null;

  async function check(): Promise<void> {
    for (const s of [...streams]) {
      const user = await userFor(s.token).catch(() => "unknown");
      if (user === null && streams.delete(s)) s.end("token no longer valid");
    }
  }
  function recheckNow(): Promise<void> {
    checking ??= check().finally(() => {
      checking = null;
    });
    return checking;
  }
  function schedule(): void {
    if (timer !== null || streams.size === 0) return;
    timer = setInterval(() => void recheckNow(), recheckMs);
    timer.unref();
  }
  function unschedule(): void {
    if (timer !== null && streams.size === 0) {
      clearInterval(timer);
      timer = null;
    }
  }
  return {
    add(stream) {
      streams.add(stream);
      schedule();
      return () => {
        streams.delete(stream);
        unschedule();
      };
    },
    recheckNow,
    endAll(reason) {
      for (const s of [...streams]) s.end(reason);
      streams.clear();
      unschedule();
    },
    get size() {
      return streams.size;
    },
  };
}
