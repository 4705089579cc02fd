/**
 * The one reconnect delay of the project: exponential backoff with "full jitter" (AWS Architecture
 * Blog, "Exponential Backoff And Jitter", 2015): attempt n waits a uniformly random time in
 * [0, min(cap, base * 2^n)], so many clients that lost the same server do not return in lockstep.
 * Pure: the random source is a parameter, so tests can pin it.
 */

export interface BackoffOptions {
  /** Delay ceiling of attempt 0, in ms (default 250). */
  baseMs?: number;
  /** Largest delay ever returned, in ms (default 10,000). */
  capMs?: number;
  /** A number in [0, 1); default Math.random. */
  random?: () => number;
}

/**
 * The delay in ms before retry number `attempt` (0 for the first retry). Non-integer or negative
 * attempts count as 0. Never more than `capMs`, never negative.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const base = options.baseMs ?? 250;
  const cap = options.capMs ?? 10_000;
  const n = Number.isInteger(attempt) && attempt > 0 ? Math.min(attempt, 30) : 0;
  const ceiling = Math.min(cap, base * 2 ** n);
  return Math.floor((options.random ?? Math.random)() * ceiling);
}
