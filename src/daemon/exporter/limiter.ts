// /probe's bounds: at most max_concurrent requests at once (503 beyond) and
// max_per_second over time (a token bucket holding one second's worth; 429
// beyond). A request is refused at once, never queued: a raw-SYN prober on
// an HTTP port must not grow a backlog whatever the callers do. Refusals are
// logged like the admin API's (refusalLog in ../rate-limited-log.ts).

export type Admission = { ok: true } | { ok: false; status: 429 | 503; error: string; retryAfterS: number };

export class Limiter {
  private inFlight = 0;
  private tokens: number;
  private last: number;

  constructor(private maxConcurrent: number, private perSecond: number, now = Date.now()) {
    this.tokens = perSecond;
    this.last = now;
  }

  /** New limits (a reload); requests in flight stay counted. */
  configure(maxConcurrent: number, perSecond: number): void {
    this.maxConcurrent = maxConcurrent;
    this.perSecond = perSecond;
    this.tokens = Math.min(this.tokens, perSecond);
  }

  get active(): number { return this.inFlight; }

  /** Admits one request (then release() it once answered) or says why not. */
  admit(now = Date.now()): Admission {
    if (this.inFlight >= this.maxConcurrent)
      return { ok: false, status: 503, error: `${this.inFlight} probes in flight, the most exporter.max_concurrent allows`, retryAfterS: 1 };
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1)
      return { ok: false, status: 429, error: `over exporter.max_per_second (${this.perSecond} probes per second)`, retryAfterS: Math.max(1, Math.ceil((1 - this.tokens) / this.perSecond)) };
    this.tokens -= 1;
    this.inFlight++;
    return { ok: true };
  }

  release(): void { if (this.inFlight > 0) this.inFlight--; }
}

