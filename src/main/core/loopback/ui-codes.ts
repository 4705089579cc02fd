/**
 * Single-use sign-in codes for the browser UI (issue 16 item 8, DESIGN.md section 3: nothing
 * reusable in another process's argv). `piper-link ui` asks the running Link for a code and opens
 * `/ui/#code=<code>`; the page trades it once, over the control WebSocket, for the control token.
 * A code is 128 random bits, lives 60 s, works once, and exists only in this process's memory, so
 * what the browser opener shows in `ps` is worthless a minute later or as soon as the page used it.
 */
import { createHash, randomBytes } from "node:crypto";

/** How long a code stays valid: long enough for a browser to start, short enough to be useless in a process list. */
export const UI_CODE_TTL_MS = 60_000;
/** Codes outstanding at once; the oldest is dropped first (a loop calling `ui` cannot grow memory). */
export const UI_CODE_MAX_OUTSTANDING = 32;

export interface UiCodes {
  /** A fresh code (base64url, 22 characters) and when it expires (ms since the epoch, by the injected clock). */
  issue(): { code: string; expiresAt: number };
  /** True once for a code that was issued and has not expired; every later or unknown code is false. */
  redeem(code: string): boolean;
}

/**
 * The Link's store of UI codes. `now` is the Link's clock (ms since the epoch; tests inject a fake
 * one) and `ttlMs` defaults to `UI_CODE_TTL_MS`.
 */
export function createUiCodes(options: { now: () => number; ttlMs?: number }): UiCodes {
  const ttlMs = options.ttlMs ?? UI_CODE_TTL_MS;
  // Keyed by the code's hash: a map lookup compares keys with ordinary string equality, and
  // timing differences over hashes reveal nothing about a code an attacker does not already have.
  const outstanding = new Map<string, number>();
  const key = (code: string) => createHash("sha256").update(code).digest("base64url");

  function sweep(): void {
    const t = options.now();
    for (const [k, expiresAt] of outstanding) if (expiresAt <= t) outstanding.delete(k);
  }

  return {
    issue() {
      sweep();
      while (outstanding.size >= UI_CODE_MAX_OUTSTANDING) {
        const oldest = outstanding.keys().next().value;
        if (oldest === undefined) break;
        outstanding.delete(oldest);
      }
      const code = randomBytes(16).toString("base64url");
      const expiresAt = options.now() + ttlMs;
      outstanding.set(key(code), expiresAt);
      return { code, expiresAt };
    },
    redeem(code) {
      const k = key(code);
      const expiresAt = outstanding.get(k);
      // Deleted whatever the outcome: a code is tried once.
      outstanding.delete(k);
      return expiresAt !== undefined && expiresAt > options.now();
    },
  };
}
