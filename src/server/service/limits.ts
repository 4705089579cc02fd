/**
 * In-process rate limits for the agent-facing and token endpoints (issue 16 item 16).
 *
 * - Per agent (instance + client ID): a token bucket, so one noisy agent cannot starve the others.
 * - Per source address, for guesses: every answer that means "you named something that does not
 *   exist or is not yours" (an unknown or revoked instance, an unknown device code, refresh token
 *   or scoped credential) takes a token from the source's bucket; an empty bucket refuses every
 *   further call from that source with 429 until it refills. A per-agent key alone gave each
 *   guessed instance ID, client ID or device code a fresh bucket, so guessing was free. Successful
 *   calls cost nothing here, so a Link serving 1,000 agents from one loopback address is never
 *   slowed by this limit.
 *
 * These live in memory: with several authority processes an attacker spread over N processes gets
 * N buckets, which still bounds guessing (sign-in throttling, which must be exact, is in the
 * database: see oauth.ts).
 */
import { TokenBucket } from "../../shared/rate-limit.js";
import { ServiceError } from "./errors.js";

export interface LimitOptions {
  /** Per-agent sustained rate, calls per second (default 30). */
  agentRatePerSecond?: number;
  /** Per-agent burst (default 60). */
  agentRateBurst?: number;
  /** Failed guesses one source may make at once (default 30). */
  guessBurst?: number;
  /** Failed guesses per second a source earns back (default 0.5, i.e. one per 2 s). */
  guessPerSecond?: number;
}

/**
 * Error codes that mean the caller named something unknown or not theirs. `authorization_pending`,
 * `slow_down`, `mapping_not_found` and `rate_limited` are normal answers to real clients, so they
 * are not guesses.
 */
export const GUESS_CODES: ReadonlySet<string> = new Set([
  "invalid_instance",
  "invalid_grant",
  "invalid_token",
  "invalid_client",
  "expired_token",
  "request_not_found",
]);

const MAX_KEYS = 10_000;

export type Limits = ReturnType<typeof createLimits>;

/** Creates the limits of one authority process, on the injected clock (epoch ms). */
export function createLimits(options: LimitOptions, now: () => number) {
  const agents = new Map<string, TokenBucket>();
  const sources = new Map<string, TokenBucket>();
  /** Sources whose guess bucket ran dry, and until when (epoch ms) they are refused. */
  const lockedUntil = new Map<string, number>();

  function bucket(map: Map<string, TokenBucket>, key: string, burst: number, perSecond: number): TokenBucket {
    let b = map.get(key);
    if (b === undefined) {
      b = new TokenBucket(burst, perSecond, now);
      map.set(key, b);
      // Bounded memory under a flood of keys: forget the oldest (a forgotten bucket starts full).
      if (map.size > MAX_KEYS) {
        const oldest = map.keys().next();
        if (oldest.done !== true) map.delete(oldest.value);
      }
    }
    return b;
  }

  const guessBurst = options.guessBurst ?? 30;
  const guessPerSecond = options.guessPerSecond ?? 0.5;

  return {
    /** Takes one call from the agent's bucket. Throws 429 `rate_limited` when it is empty. */
    agent: (instanceId: string, agentClientId: string): void => {
      if (
        !bucket(
          agents,
          `${instanceId}\u0000${agentClientId}`,
          options.agentRateBurst ?? 60,
          options.agentRatePerSecond ?? 30,
        ).take()
      ) {
        throw new ServiceError(429, "rate_limited", "Too many requests from this agent; slow down and retry.");
      }
    },

    /**
     * Admits a call from `address` to a guarded endpoint: throws 429 `rate_limited` while the
     * source has used up its failed guesses. Does not take a token (only failures do).
     */
    admitSource: (address: string): void => {
      const until = lockedUntil.get(address);
      if (until !== undefined && until > now()) {
        throw new ServiceError(
          429,
          "rate_limited",
          "Too many failed attempts from this address (unknown instance, client, device code or token). Wait a minute and retry.",
        );
      }
    },

    /** Records the outcome of a guarded call from `address`: error codes in GUESS_CODES cost a token. */
    recordSourceOutcome: (address: string, errorCode: string): void => {
      if (!GUESS_CODES.has(errorCode)) return;
      if (!bucket(sources, address, guessBurst, guessPerSecond).take()) {
        // Empty: refuse the source until one token has come back.
        lockedUntil.set(address, now() + 1000 / guessPerSecond);
        if (lockedUntil.size > MAX_KEYS) {
          const oldest = lockedUntil.keys().next();
          if (oldest.done !== true) lockedUntil.delete(oldest.value);
        }
      }
    },
  };
}
