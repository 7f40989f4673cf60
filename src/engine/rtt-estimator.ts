// `--timeout auto`: how long a sweep waits after the last SYN of a pass, from
// the round-trip times measured in that same sweep. As nmap's estimator does
// (RFC 6298 style, bounded by --min-rtt-timeout and --max-rtt-timeout), the
// wait follows the network, between a floor and a ceiling: a high quantile of
// the RTTs seen so far, times a safety factor. A LAN answers in a fraction of
// a millisecond and a silent probe then costs the floor, not a second; a
// backend network that answers in 200 ms gets three times its slow tail.
//
// Pure: an RttHistogram of samples and a function of its quantile. The
// properties (never below the floor, never above the ceiling, monotone in the
// observed quantile, conservative quantiles) are checked with fast-check in
// test/unit/rtt-estimator.test.ts.

export interface TimeoutPolicy {
  /** The quantile of the RTTs measured that bounds the replies still to come (0 < q < 1). */
  quantile: number;
  /** Multiplies that quantile: room for a tail slower than what was seen. */
  factor: number;
  /** Never wait less, ms: scheduling noise on both ends, and a reply that the quantile has not seen yet. */
  floorMs: number;
  /** Never wait more, ms (--max-timeout); also the wait before enough RTTs were measured. */
  ceilingMs: number;
  /** Fewer samples than this and the quantile means little: wait the ceiling. */
  minSamples: number;
}

export const AUTO_DEFAULTS: Omit<TimeoutPolicy, 'ceilingMs'> = { quantile: 0.99, factor: 3, floorMs: 50, minSamples: 32 };

/**
 * The wait after a pass's last SYN, ms, for the observed quantile `rttMs`
 * (null: not enough samples). Clamped to [floorMs, ceilingMs]; a ceiling
 * below the floor wins (the user's --max-timeout is a promise).
 */
export function waitFor(rttMs: number | null, p: TimeoutPolicy): number {
  if (rttMs === null || !Number.isFinite(rttMs)) return p.ceilingMs;
  const want = Math.ceil(Math.max(0, rttMs) * p.factor);
  return Math.min(p.ceilingMs, Math.max(p.floorMs, want));
}

/** Histogram buckets per factor of 2 of RTT: bucket edges about 4.4 % apart. */
const PER_OCTAVE = 16;
/** Smallest edge, ms (1 µs); smaller samples count in the first bucket. */
const MIN_MS = 0.001;
/** Octaves above MIN_MS: up to about 1.1 hours. */
const OCTAVES = 32;
const BUCKETS = PER_OCTAVE * OCTAVES;

/** Upper edge of bucket b, ms. */
const edge = (b: number): number => MIN_MS * 2 ** ((b + 1) / PER_OCTAVE);

/**
 * A streaming histogram of RTTs on log-spaced buckets: O(1) per sample, a
 * fixed 4 KB whatever the sweep's size. quantile() returns the upper edge of
 * the bucket holding the q-th sample, so it is never below the true quantile
 * and at most one bucket (4.4 %) above it.
 */
export class RttHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  private n = 0;
  private max = 0;

  get samples(): number { return this.n; }

  add(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) return;
    const b = ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.max(0, Math.ceil(Math.log2(ms / MIN_MS) * PER_OCTAVE) - 1));
    this.counts[b]++;
    this.n++;
    if (ms > this.max) this.max = ms;
  }

  /** The q-quantile of the samples (an upper bound, see above), or null with none. */
  quantile(q: number): number | null {
    if (this.n === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.counts[b];
      // The last bucket is open-ended: its samples are bounded by the largest seen.
      if (seen >= rank) return b === BUCKETS - 1 ? this.max : Math.min(edge(b), Math.max(this.max, MIN_MS));
    }
    return this.max;
  }
}

/** The wait a policy gives for what a histogram has seen. */
export function waitForSamples(h: RttHistogram, p: TimeoutPolicy): number {
  return waitFor(h.samples < p.minSamples ? null : h.quantile(p.quantile), p);
}
