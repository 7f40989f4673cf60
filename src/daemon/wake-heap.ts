// The scheduler's agenda: a binary min-heap of (time, backend, version), the
// next moment each backend needs attention. A backend is rescheduled by
// pushing it again with a new version; entries carrying an older version are
// stale and skipped when they reach the top, so no decrease-key is needed.

/** What the heap needs of an entry: a version that changes when it is rescheduled. */
export interface Versioned { version: number }

export class WakeHeap<B extends Versioned> {
  private t: number[] = [];
  private b: B[] = [];
  private v: number[] = [];

  /** Entries, stale ones included. */
  get size(): number { return this.t.length; }

  /** Time of the earliest entry (stale or not), Infinity when empty. */
  peek(): number { return this.t.length ? this.t[0] : Infinity; }

  push(time: number, entry: B): void {
    let i = this.t.length;
    this.t.push(time); this.b.push(entry); this.v.push(entry.version);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.t[p] <= this.t[i]) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Pops the earliest entry still current (its version unchanged), or null when none is left. */
  pop(): B | null {
    while (this.t.length) {
      const b = this.b[0], v = this.v[0];
      const lt = this.t.pop()!, lb = this.b.pop()!, lv = this.v.pop()!;
      if (this.t.length) {
        this.t[0] = lt; this.b[0] = lb; this.v[0] = lv;
        this.siftDown(0);
      }
      if (b.version === v) return b;
    }
    return null;
  }

  clear(): void { this.t = []; this.b = []; this.v = []; }

  private siftDown(i: number): void {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < this.t.length && this.t[l] < this.t[m]) m = l;
      if (r < this.t.length && this.t[r] < this.t[m]) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }

  private swap(i: number, j: number): void {
    // Temporaries, not destructuring: [a, b] = [b, a] allocates an array each time.
    const t = this.t[i]; this.t[i] = this.t[j]; this.t[j] = t;
    const b = this.b[i]; this.b[i] = this.b[j]; this.b[j] = b;
    const v = this.v[i]; this.v[i] = this.v[j]; this.v[j] = v;
  }
}
