/**
 * Live grants the Link may answer from memory, so a granted `resolve` costs a map lookup instead of
 * a round trip to the authority. Safe because it is narrow:
 *  - only reusable grants (not `once`), keyed by agent, variable and the exact requesting process;
 *  - entries end at the grant's own expiry;
 *  - everything is dropped on any grant or secret change the authority announces, on every change
 *    made through this Link (revoke, secrets, sign-out), and whenever the event stream is down —
 *    while the Link cannot hear revocations it does not answer from memory at all;
 *  - every answer from memory is reported to the authority for its audit log (batched, flushed on stop).
 */
import type { Logger } from "pino";
import type { UsageReport } from "../../../shared/authority.js";
import { backoffDelay } from "../../../shared/backoff.js";
import { identityMemoryKey, type PeerProcess } from "../../../shared/process.js";
import { normalizeVariable } from "../../../shared/protocol.js";

interface Entry {
  value: string;
  grantId: string;
  expiresAt: number | null;
}

export interface GrantCache {
  get(agentClientId: string, variable: string, process: PeerProcess | null, now: number): Entry | null;
  /**
   * Stores an answer fetched from the authority. `generation` is the value read before the fetch:
   * if anything was cleared meanwhile (a revocation raced the fetch), the answer is not stored.
   */
  put(agentClientId: string, variable: string, process: PeerProcess | null, entry: Entry, generation: number): void;
  readonly generation: number;
  /** True while answers may come from memory (the event stream is up); calls/ keys its own cache on it. */
  readonly enabled: boolean;
  clear(reason: string): void;
  /** Turns answering from memory on (event stream connected) or off (and clears). */
  setEnabled(enabled: boolean): void;
  recordUse(use: UsageReport["uses"][number]): void;
  flush(): Promise<void>;
  stop(): Promise<void>;
  readonly size: number;
}

export function createGrantCache(options: {
  log: Logger;
  report: (r: UsageReport) => Promise<unknown>;
  flushMs?: number;
  maxEntries?: number;
}): GrantCache {
  const entries = new Map<string, Entry>();
  let enabled = false;
  let generation = 0;
  let pending: UsageReport["uses"] = [];
  const key = (agentClientId: string, variable: string, process: PeerProcess | null): string =>
    `${agentClientId}\u0000${normalizeVariable(variable)}\u0000${identityMemoryKey(process)}`;

  let flushing: Promise<void> | null = null;
  /** After a failed report, wait before the next attempt instead of retrying on every delivery. */
  let retryAt = 0;
  let failures = 0;
  /** One flush at a time: callers during a flush share it, and it drains what arrived meanwhile. */
  function flush(): Promise<void> {
    if (flushing !== null) return flushing;
    if (pending.length === 0) return Promise.resolve();
    const drain = async (): Promise<void> => {
      while (pending.length > 0) {
        const batch = pending.splice(0, 1000);
        try {
          await options.report({ uses: batch });
          failures = 0;
        } catch (err) {
          // Keep them for the next flush; the audit log must not lose deliveries.
          pending = [...batch, ...pending].slice(0, 100_000);
          retryAt = Date.now() + backoffDelay(failures++, { baseMs: 1000, capMs: 30_000 });
          options.log.warn({ err: String(err), queued: pending.length }, "usage report failed; will retry");
          return;
        }
      }
    };
    flushing = drain().finally(() => {
      flushing = null;
    });
    return flushing;
  }

  const timer = setInterval(() => void flush(), options.flushMs ?? 500);
  timer.unref();

  return {
    get(agentClientId, variable, process, now) {
      if (!enabled) return null;
      const k = key(agentClientId, variable, process);
      const e = entries.get(k);
      if (e === undefined) return null;
      if (e.expiresAt !== null && e.expiresAt <= now) {
        entries.delete(k);
        return null;
      }
      return e;
    },
    put(agentClientId, variable, process, entry, seen) {
      if (!enabled || seen !== generation) return;
      if (entries.size >= (options.maxEntries ?? 10_000)) entries.clear();
      entries.set(key(agentClientId, variable, process), entry);
    },
    clear(reason) {
      generation += 1;
      if (entries.size > 0) options.log.debug({ reason, entries: entries.size }, "grant cache cleared");
      entries.clear();
    },
    setEnabled(on) {
      enabled = on;
      if (!on) {
        generation += 1;
        entries.clear();
      }
    },
    recordUse(use) {
      pending.push(use);
      if (pending.length >= 200 && flushing === null && Date.now() >= retryAt) void flush();
    },
    flush,
    async stop() {
      clearInterval(timer);
      entries.clear();
      await flush();
    },
    get size() {
      return entries.size;
    },
    get generation() {
      return generation;
    },
    get enabled() {
      return enabled;
    },
  };
}
