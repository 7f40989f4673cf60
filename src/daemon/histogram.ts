// A fixed-bucket histogram in Prometheus's shape (cumulative on output): the
// round-trip times of answered checks, and how late checks leave against
// their schedule.

export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;

  /** `bounds`: upper bounds (le), ascending, in the unit observed. */
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Array(bounds.length + 1).fill(0);
  }

  observe(x: number): void {
    this.sum += x;
    this.count++;
    let i = 0;
    while (i < this.bounds.length && x > this.bounds[i]) i++;
    this.counts[i]++;
  }

  /** Prometheus text lines for `name` (HELP/TYPE are the caller's), numbers through `num`. */
  render(name: string, num: (x: number) => string): string {
    let out = '';
    let cum = 0;
    this.bounds.forEach((le, i) => { cum += this.counts[i]; out += `${name}_bucket{le="${le}"} ${cum}\n`; });
    cum += this.counts[this.bounds.length];
    out += `${name}_bucket{le="+Inf"} ${cum}\n`;
    return out + `${name}_sum ${num(this.sum)}\n${name}_count ${this.count}\n`;
  }
}

/** Round-trip buckets, seconds: 100 µs to 1 s. */
export const RTT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
/** Lateness buckets, seconds: within a tick (10–100 ms) is normal, beyond a second is a stall. */
export const LATENESS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
