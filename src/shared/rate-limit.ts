// Pure (no I/O): shared by the Link core and the authority.
/**
 * A token bucket: `capacity` messages at once, refilled at `perSecond`. Time comes from the
 * injected clock so tests can drive it.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly capacity: number,
    private readonly perSecond: number,
    private readonly now: () => number,
  ) {
    this.tokens = capacity;
    this.last = now();
  }

  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((t - this.last) / 1000) * this.perSecond);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** Counts events in a fixed window; `hit()` returns the count in the current window. */
export class WindowCounter {
  private count = 0;
  private start: number;

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {
    this.start = now();
  }

  hit(): number {
    const t = this.now();
    if (t - this.start > this.windowMs) {
      this.start = t;
      this.count = 0;
    }
    this.count += 1;
    return this.count;
  }
}
