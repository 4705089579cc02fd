/**
 * The authority's event stream (`GET /v1/events`, server-sent events) as the Link reads it: bytes go
 * through eventsource-parser (which joins multi-line `data:` fields and handles CR/LF variants and
 * chunk boundaries), each event is checked with `AuthorityEventSchema`, and anything malformed (bad
 * JSON, an unknown type) is reported and skipped: nothing the stream carries can crash the Link.
 * `followEvents` keeps one stream open, reconnecting with the shared jittered backoff.
 */
import { createParser } from "eventsource-parser";
import { AuthorityEventSchema, type AuthorityEvent } from "../../../shared/authority.js";
import { backoffDelay } from "../../../shared/backoff.js";

export interface EventSink {
  event(e: AuthorityEvent): void;
  /** An event that was not JSON or not of a known shape; it was skipped. */
  malformed(reason: string, data: string): void;
}

/**
 * A push parser for one stream: feed it text as it arrives. Used by `followEvents`, and directly by
 * tests. Never throws for any input.
 */
export function createEventDecoder(sink: EventSink): { feed(text: string): void } {
  const parser = createParser({
    onEvent(message) {
      let json: unknown;
      try {
        json = JSON.parse(message.data);
      } catch {
        sink.malformed("not JSON", message.data);
        return;
      }
      const parsed = AuthorityEventSchema.safeParse(json);
      if (parsed.success) sink.event(parsed.data);
      else sink.malformed("unknown event", message.data);
    },
  });
  return { feed: (text) => parser.feed(text) };
}

/** One open stream: its body arrives as text chunks and ends (or fails) once. */
export interface OpenedStream {
  chunks: AsyncIterable<string>;
  close(): void;
}

export interface FollowOptions {
  /**
   * Opens the stream once. Resolves when the server accepted it (HTTP 200), rejects otherwise with an
   * Error whose message says why (shown in status). Null token means nobody is signed in yet.
   */
  open(): Promise<OpenedStream | null>;
  sink: EventSink;
  /** Reachability as the stream sees it: true once open, false with a reason when it drops. */
  onState(connected: boolean, error: string | null): void;
  /** Backoff ceiling of the first retry and the cap, in ms (defaults 250 and 10,000). */
  baseMs?: number;
  capMs?: number;
}

/**
 * Keeps the event stream open until the returned function is called: on every drop `onState(false)`,
 * then a retry after `backoffDelay(attempt)`; a stream that opened resets the attempt count.
 */
export function followEvents(options: FollowOptions): () => void {
  let stopped = false;
  // Read through a function: `stop()` may run while `run()` awaits, which narrowing cannot see.
  const isStopped = (): boolean => stopped;
  let current: OpenedStream | null = null;
  let attempt = 0;
  let timer: NodeJS.Timeout | null = null;

  const retry = (why: string): void => {
    current = null;
    if (isStopped()) return;
    options.onState(false, why);
    timer = setTimeout(
      () => void run(),
      backoffDelay(attempt++, { baseMs: options.baseMs ?? 250, capMs: options.capMs ?? 10_000 }),
    );
    timer.unref();
  };

  async function run(): Promise<void> {
    timer = null;
    if (isStopped()) return;
    let stream: OpenedStream | null;
    try {
      stream = await options.open();
    } catch (err) {
      retry(err instanceof Error ? err.message : String(err));
      return;
    }
    if (stream === null) {
      retry("not signed in");
      return;
    }
    if (isStopped()) {
      stream.close();
      return;
    }
    current = stream;
    attempt = 0;
    options.onState(true, null);
    const decoder = createEventDecoder(options.sink);
    try {
      for await (const chunk of stream.chunks) decoder.feed(chunk);
      retry("the event stream ended");
    } catch (err) {
      retry(err instanceof Error ? err.message : String(err));
    }
  }

  void run();
  return () => {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    current?.close();
  };
}
