/**
 * Events between the authority's parts and processes: new requests, decisions, grant and secret
 * changes. With SQLite (one process) an in-process emitter; with PostgreSQL every publish is a
 * NOTIFY and every process LISTENs, so several authority processes on one database see each
 * other's changes (waiting agents and event streams wake up wherever the change was made).
 */
import { EventEmitter } from "node:events";
import pg from "pg";
import { AuthorityEventSchema, type AuthorityEvent } from "../shared/authority.js";
import { backoffDelay } from "../shared/backoff.js";

export interface EventBus {
  publish(event: AuthorityEvent): Promise<void>;
  subscribe(listener: (event: AuthorityEvent) => void): () => void;
  /**
   * Called when events may have been missed (the PostgreSQL LISTEN connection was lost, and again
   * once it listens anew): whoever keeps state from events reads it afresh. Never for the local bus.
   */
  onGap(listener: () => void): () => void;
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
    // One process, no connection to lose: nothing is ever missed.
    onGap: () => () => undefined,
    close: () => Promise.resolve(),
  };
}

/**
 * The PostgreSQL bus: NOTIFY to publish, one LISTEN connection to hear every process's events.
 * A connection can be lost (the server restarts, an administrator ends it); events NOTIFYed then
 * are gone for good, so the bus reports a gap (`onGap`) when the LISTEN connection drops and again
 * once it listens anew (reconnecting with backoff and jitter), and listeners that keep state from
 * events resynchronise: event streams end (a Link then drops its grant cache and reconnects) and
 * waiting agents read their request again. The publishing connection is reopened on the next
 * publish. `onError` hears every connection error (for the log); it never ends the process.
 */
export async function createPostgresBus(url: string, onError: (err: Error) => void): Promise<EventBus> {
  const local = createLocalBus();
  const gaps = new EventEmitter();
  gaps.setMaxListeners(0);
  let closed = false;
  let listener: pg.Client | null = null;
  let publisher: pg.Client | null = null;
  let attempt = 0;
  let retry: NodeJS.Timeout | undefined;

  function gap(): void {
    gaps.emit("gap");
  }
  async function listen(): Promise<void> {
    const client = new pg.Client({ connectionString: url });
    let lost = false;
    const onLost = (err?: Error): void => {
      if (err !== undefined) onError(err);
      if (lost || closed) return;
      lost = true;
      listener = null;
      client.end().catch(() => undefined);
      gap();
      scheduleListen();
    };
    client.on("error", onLost);
    client.on("end", () => onLost());
    client.on("notification", (msg) => {
      if (msg.channel !== CHANNEL || msg.payload === undefined) return;
      try {
        void local.publish(AuthorityEventSchema.parse(JSON.parse(msg.payload)));
      } catch (err) {
        onError(err instanceof Error ? err : new Error(String(err)));
      }
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (err) {
      lost = true;
      await client.end().catch(() => undefined);
      throw err;
    }
    if (closed) {
      await client.end().catch(() => undefined);
      return;
    }
    listener = client;
  }
  function scheduleListen(): void {
    if (closed || retry !== undefined) return;
    retry = setTimeout(() => {
      retry = undefined;
      listen().then(
        () => {
          attempt = 0;
          // Whatever was NOTIFYed while nobody listened is lost: everyone reads afresh once more.
          gap();
        },
        (err: unknown) => {
          onError(err instanceof Error ? err : new Error(String(err)));
          attempt += 1;
          scheduleListen();
        },
      );
    }, backoffDelay(attempt));
    retry.unref();
  }
  async function publishingClient(): Promise<pg.Client> {
    if (publisher !== null) return publisher;
    const client = new pg.Client({ connectionString: url });
    client.on("error", (err) => {
      onError(err);
      if (publisher === client) publisher = null;
    });
    client.on("end", () => {
      if (publisher === client) publisher = null;
    });
    await client.connect();
    publisher = client;
    return client;
  }

  await listen();
  await publishingClient();
  return {
    async publish(event) {
      const client = await publishingClient();
      await client.query("SELECT pg_notify($1, $2)", [CHANNEL, JSON.stringify(event)]);
    },
    subscribe: (l) => local.subscribe(l),
    onGap(l) {
      gaps.on("gap", l);
      return () => gaps.off("gap", l);
    },
    async close() {
      closed = true;
      clearTimeout(retry);
      await listener?.end().catch(() => undefined);
      await publisher?.end().catch(() => undefined);
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
export function createStreamRegistry(
  userFor: (token: string) => Promise<string | null>,
  recheckMs = 5000,
): StreamRegistry {
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
