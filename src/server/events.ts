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
