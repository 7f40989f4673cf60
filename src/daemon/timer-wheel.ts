// The scheduler's agenda: each backend row's next moment of interest, in a
// timer wheel of one bucket per scheduling tick. Buckets are intrusive
// doubly linked lists over typed arrays indexed by row (next, prev, bucket),
// so scheduling, rescheduling and cancelling are O(1) and allocate nothing,
// and an entry is in at most one bucket: no stale entries to skip, unlike a
// heap with lazy deletion (at 100,000 backends a binary heap cost 17 levels
// of sift per check and held every superseded entry until it surfaced).
//
// A time t falls in tick floor(t / tickMs), bucket tick mod the wheel size.
// drain(now) visits every bucket from the last tick it reached up to now's
// and hands out the entries due by now; entries of later turns of the wheel
// (further ahead than its span) stay where they are, and the current
// bucket is looked at again next time for what falls due within its tick.
// A time already behind the wheel goes into the current bucket: due at once.

const NONE = -1;

export class TimerWheel {
  /** Per row: its time, next and previous row in its bucket, and the bucket (NONE: not scheduled). */
  private at = new Float64Array(0);
  private next = new Int32Array(0);
  private prev = new Int32Array(0);
  private bucketOf = new Int32Array(0);
  /** Head row of each bucket. */
  private heads: Int32Array;
  private readonly mask: number;
  /**
   * The first tick drain() has to look at: the tick it last reached (its
   * bucket may still hold entries due later in that tick), or before the
   * first drain the earliest tick scheduled; unset (hasCursor) when neither.
   */
  private cursor = 0;
  private hasCursor = false;
  private drained = false;
  private count = 0;

  /** size: buckets, a power of two; with 50 ms ticks 4,096 span 204 s before entries wait a turn. */
  constructor(private tickMs: number, size = 4096) {
    if (size & (size - 1)) throw new Error('TimerWheel: size must be a power of two');
    this.mask = size - 1;
    this.heads = new Int32Array(size).fill(NONE);
  }

  /** Entries scheduled. */
  get size(): number { return this.count; }

  /** Time row id is scheduled for, or Infinity. */
  timeOf(id: number): number { return id < this.bucketOf.length && this.bucketOf[id] !== NONE ? this.at[id] : Infinity; }

  /** Room for rows below n. */
  ensure(n: number): void {
    if (n <= this.at.length) return;
    const cap = Math.max(n, this.at.length * 2, 1024);
    const grow = <T extends Float64Array | Int32Array>(a: T, fill: number): T => {
      const b = new (a.constructor as new (n: number) => T)(cap).fill(fill) as T;
      b.set(a);
      return b;
    };
    this.at = grow(this.at, 0); this.next = grow(this.next, NONE); this.prev = grow(this.prev, NONE); this.bucketOf = grow(this.bucketOf, NONE);
  }

  /** (Re)schedules row id at time t; Infinity cancels. */
  schedule(id: number, t: number): void {
    if (id >= this.at.length) this.ensure(id + 1);
    if (this.bucketOf[id] !== NONE) this.unlink(id);
    if (t === Infinity) return;
    this.at[id] = t;
    let tick = Math.floor(t / this.tickMs);
    if (!this.hasCursor) { this.cursor = tick; this.hasCursor = true; }
    else if (tick < this.cursor) {
      if (this.drained) tick = this.cursor; // behind the wheel: due at the next drain
      else this.cursor = tick;
    }
    const k = tick & this.mask;
    const h = this.heads[k];
    this.next[id] = h;
    this.prev[id] = NONE;
    if (h !== NONE) this.prev[h] = id;
    this.heads[k] = id;
    this.bucketOf[id] = k;
    this.count++;
  }

  cancel(id: number): void {
    if (id < this.at.length && this.bucketOf[id] !== NONE) this.unlink(id);
  }

  private unlink(id: number): void {
    const n = this.next[id], p = this.prev[id], k = this.bucketOf[id];
    if (p !== NONE) this.next[p] = n; else this.heads[k] = n;
    if (n !== NONE) this.prev[n] = p;
    this.bucketOf[id] = NONE;
    this.count--;
  }

  /**
   * Calls visit(id) for every row due by `now`, each unscheduled first (visit
   * may schedule it again; an entry scheduled after `now` is not visited
   * again in this call). Returns how many it visited.
   */
  drain(now: number, visit: (id: number) => void): number {
    const nowTick = Math.floor(now / this.tickMs);
    let from = this.hasCursor ? Math.min(this.cursor, nowTick) : nowTick;
    if (nowTick - from > this.mask) from = nowTick - this.mask; // a whole turn behind: each bucket once
    this.cursor = nowTick;
    this.hasCursor = this.drained = true;
    let visited = 0;
    for (let tick = from; tick <= nowTick; tick++) {
      const k = tick & this.mask;
      let id = this.heads[k];
      while (id !== NONE) {
        let n = this.next[id];
        if (this.at[id] <= now) {
          this.unlink(id);
          visited++;
          visit(id);
          // visit moved the next entry elsewhere (it may touch other rows): walk this bucket again.
          if (n !== NONE && this.bucketOf[n] !== k) n = this.heads[k];
        }
        id = n;
      }
    }
    return visited;
  }

  /** A new tick length: every entry is filed again under it. */
  retick(tickMs: number): void {
    if (tickMs === this.tickMs) return;
    const ids: number[] = [];
    for (let k = 0; k <= this.mask; k++) for (let id = this.heads[k]; id !== NONE; id = this.next[id]) ids.push(id);
    const times = ids.map((id) => this.at[id]);
    for (const id of ids) this.unlink(id);
    // The same moment in the new ticks: nothing behind it is lost, nothing ahead is due early.
    if (this.hasCursor) this.cursor = Math.floor((this.cursor * this.tickMs) / tickMs);
    this.tickMs = tickMs;
    ids.forEach((id, i) => this.schedule(id, times[i]));
  }

  /** Unschedules every entry. */
  clear(): void {
    for (let k = 0; k <= this.mask; k++) {
      for (let id = this.heads[k]; id !== NONE;) { const n = this.next[id]; this.bucketOf[id] = NONE; id = n; }
      this.heads[k] = NONE;
    }
    this.count = 0;
  }
}
