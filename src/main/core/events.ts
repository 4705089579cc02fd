/**
 * The core's control events (status, authority events, settings, "show"): delivered to every
 * control client through the loopback server and to in-process listeners (the Electron shell).
 * A listener that throws is logged and never stops the others.
 */
import type { Logger } from "pino";
import type { ControlEvent } from "../../shared/control.js";

export interface EventHub {
  emit(event: ControlEvent): void;
  /** Adds an in-process listener; returns its removal. */
  subscribe(listener: (event: ControlEvent) => void): () => void;
  /** Where events go besides listeners (the loopback server's control channels), or null. */
  setBroadcast(broadcast: ((event: ControlEvent) => void) | null): void;
}

export function createEventHub(log: Logger): EventHub {
  const listeners = new Set<(event: ControlEvent) => void>();
  let broadcast: ((event: ControlEvent) => void) | null = null;
  return {
    emit(event) {
      broadcast?.(event);
      for (const listener of listeners) {
        try {
          listener(event);
        } catch (err) {
          log.error({ err: err instanceof Error ? err.message : String(err) }, "event listener failed");
        }
      }
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    setBroadcast(next) {
      broadcast = next;
    },
  };
}
