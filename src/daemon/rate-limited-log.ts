// A log line at most once per period, with a count of those not shown: for
// what a client or a balancer can make serve say as often as it likes (admin
// and /probe refusals, push failures).
export class RateLimitedLog {
  private last = -Infinity;
  private skipped = 0;

  /** `unshown(n)` is appended to the next line shown after n were held back. */
  constructor(private readonly out: (m: string) => void, private readonly everyMs: number, private readonly unshown: (n: number) => string) {}

  write(m: string, now = Date.now()): void {
    if (now - this.last < this.everyMs) { this.skipped++; return; }
    this.out(this.skipped ? `${m}${this.unshown(this.skipped)}` : m);
    this.skipped = 0;
    this.last = now;
  }

  /** The next line is shown at once (after a recovery). */
  reset(): void { this.last = -Infinity; this.skipped = 0; }
}

/** Refusals of requests (admin API, /probe): at most one line every 10 s. */
export const refusalLog = (out: (m: string) => void): RateLimitedLog =>
  new RateLimitedLog(out, 10_000, (n) => ` (and ${n} more refusals since the last report)`);

/** Warnings about a balancer serve pushes to: at most one line every `everyMs` (30 s). */
export const warningLog = (out: (m: string) => void, everyMs = 30_000): RateLimitedLog =>
  new RateLimitedLog(out, everyMs, (n) => ` (${n} similar warnings not shown)`);
