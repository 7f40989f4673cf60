// What `halfopen serve` keeps per backend, struct-of-arrays: one typed array
// per field, indexed by the backend's record (row) number, as the probe table
// already is per slot. 100,000 backends as JS objects cost about 1.7 KB each
// (the object, its health, counters, last result, two typed arrays of
// history and their buffers, boxed doubles); as rows here, about 300 bytes,
// and the scheduler's hot loop touches no objects at all. src/daemon/backend.ts
// is the object face the rest of the daemon reads (Backend), one thin view
// per backend over its row.
//
// Row 0 is never handed out: a Backend the monitor has dropped points there,
// so a reader that kept it sees a neutral record, not another backend's.

/** Most checks of one backend in flight at once (one probe-table slot each). */
export const MAX_DEPTH = 8;

/** Slots of a row beyond its first (in `more`). */
const MORE = MAX_DEPTH - 1;

/** Results kept per backend for /backends/NAME (history). */
export const HISTORY = 30;

/** Longest streak a row counts (an Int32): a longer one stays at this. */
const STREAK_MAX = 2 ** 31 - 1;

/** A streak as a row holds it: whole, within ±STREAK_MAX. */
export const streakKept = (n: number): number => Math.max(-STREAK_MAX, Math.min(STREAK_MAX, Math.round(n)));

/** lastState / failState / history code for "none" (else an index into PROBE_STATES). */
export const NO_STATE = 255;

/** Reason strings by code: syn-ack, rst, no-response, icmp-T-C, and whatever a state file brought back. */
const reasonText: string[] = [''];
const reasonCode = new Map<string, number>([['', 0]]);

/** The code of a reason string (interned once; there are few distinct ones). */
export function reasonToCode(reason: string): number {
  let c = reasonCode.get(reason);
  if (c === undefined) {
    if (reasonText.length >= 0xffff) return 0; // not a vocabulary any longer: keep the table bounded
    c = reasonText.length;
    reasonText.push(reason);
    reasonCode.set(reason, c);
  }
  return c;
}

export const reasonOfCode = (c: number): string => reasonText[c] ?? '';

/**
 * Longest RTT a row holds, µs (536.9 s): an RTT is at most its check's
 * timeout, and a longer one is kept as this.
 */
export const HIST_MAX_US = 2 ** 29 - 2;

/**
 * An RTT as a row keeps it: whole µs plus one, 0 for none (NaN). RTTs are
 * rounded to the µs before they are kept (roundMs), so this is exact; as
 * doubles the three RTTs of a row were 12 bytes more.
 */
export const rttKept = (rttMs: number): number =>
  Number.isNaN(rttMs) ? 0 : Math.min(HIST_MAX_US, Math.max(0, Math.round(rttMs * 1000))) + 1;

/** The RTT of rttKept(), ms (NaN: none). */
export const rttOfKept = (us: number): number => (us === 0 ? NaN : (us - 1) / 1000);

/**
 * A history entry in 4 bytes: the state code in the low 3 bits, above them
 * rttKept(). As a state byte and a float it was 5 bytes, 15 MB of rows at
 * 1,000,000 backends.
 */
export function histEntry(code: number, rttMs: number): number {
  return rttKept(rttMs) * 8 + code;
}

/** The state code of a history entry. */
export const histCode = (e: number): number => e & 7;

/** The RTT of a history entry, ms (NaN: none). */
export const histRttMs = (e: number): number => rttOfKept(Math.floor(e / 8));

type Row = Float64Array | Float32Array | Int32Array | Uint32Array | Uint16Array | Uint8Array | Int16Array;

function grown<T extends Row>(a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}

/** Every per-row array of a BackendStore, and its entries per row. */
const FIELDS: ReadonlyArray<readonly [string, number]> = [
  ['nextAt', 1], ['lastPlanned', 1], ['headDeadline', 1], ['slotFreedAt', 1], ['jitter', 1], ['born', 1], ['since', 1], ['upAt', 1], ['serial', 1],
  ['lastTs', 1], ['lastRttUs', 1], ['lastState', 1], ['lastReason', 1], ['okRttUs', 1], ['okTtl', 1], ['failRttUs', 1], ['failTtl', 1], ['failState', 1], ['failReason', 1],
  ['checks', 1], ['changes', 1], ['counts', 4], ['health', 1], ['streak', 1], ['reported', 1], ['admin', 1], ['firstDecides', 1],
  ['inflight', 1], ['queue', 1], ['round', 1], ['slot0', 1], ['moreAt', 1], ['nslots', 1], ['hist', HISTORY], ['histLen', 1], ['histPos', 1],
];

export class BackendStore {
  /** Rows allocated (row 0 included). */
  capacity = 0;
  private readonly free: number[] = [];
  private top = 1;
  private serials = 0;

  // Schedule (ms since the epoch, or fractions)
  nextAt = new Float64Array(0);
  lastPlanned = new Float64Array(0);
  headDeadline = new Float64Array(0);
  slotFreedAt = new Float64Array(0);
  /** This interval's jitter, a fraction of it (±cfg.jitter). */
  jitter = new Float32Array(0);
  // Reporting
  born = new Float64Array(0);
  since = new Float64Array(0);
  upAt = new Float64Array(0);
  /** Unique per allocation: a record's identity across reloads (a Backend object is not). */
  serial = new Float64Array(0);
  // Last result (lastState NO_STATE: none yet)
  lastTs = new Float64Array(0);
  /** RTTs: rttKept(), µs + 1 (0: none) */
  lastRttUs = new Int32Array(0);
  lastState = new Uint8Array(0);
  lastReason = new Uint16Array(0);
  // For check_tcp_half_open --via: the latest answered and the latest failed check
  okRttUs = new Int32Array(0);
  okTtl = new Int16Array(0);
  failRttUs = new Int32Array(0);
  failTtl = new Int16Array(0);
  failState = new Uint8Array(0);
  failReason = new Uint16Array(0);
  // Counters (doubles: they outlive 2^32)
  checks = new Float64Array(0);
  changes = new Float64Array(0);
  /** Completed checks by state: 4 per row, PROBE_STATES order. */
  counts = new Float64Array(0);
  // Health (health.ts arithmetic)
  health = new Uint16Array(0);
  /** Consecutive successes (> 0) or failures (< 0), saturating at ±(2^31 - 1). */
  streak = new Int32Array(0);
  /** 1: up, 0: down (the reported state). */
  reported = new Uint8Array(0);
  /** 0 ready, 1 drain, 2 maint (ADMIN_STATES order). */
  admin = new Uint8Array(0);
  firstDecides = new Uint8Array(0);
  // Checks in flight: indices into the row's slots, packed 3 bits each, oldest first
  inflight = new Uint8Array(0);
  queue = new Uint32Array(0);
  round = new Uint32Array(0);
  /**
   * Probe-table slots of a row (slotOf): its first in slot0, the others
   * (most rows have one: depthFor) in block moreAt - 1 of `more` (moreAt 0:
   * none). As MAX_DEPTH per row they were 24 bytes more for a row with
   * one, 2.4 MB at 100,000 backends.
   */
  slot0 = new Int32Array(0);
  moreAt = new Int32Array(0);
  private more = new Int32Array(0);
  private readonly freeBlocks: number[] = [];
  private blocks = 0;
  nslots = new Uint8Array(0);
  // History ring, HISTORY per row
  /** One result each: histEntry(state code, RTT). */
  hist = new Uint32Array(0);
  histLen = new Uint8Array(0);
  histPos = new Uint8Array(0);

  constructor(initial = 1024) {
    this.grow(Math.max(2, initial));
  }

  /** Rows in use (row 0 excluded). */
  get size(): number { return this.top - 1 - this.free.length; }

  /** Rows the store must hold to hand out n more without growing (a large apply sizes the store once). */
  rowsFor(n: number): number {
    return this.top + Math.max(0, n - this.free.length);
  }

  /** Room for n more rows without growing step by step. */
  reserve(n: number): void {
    const need = this.rowsFor(n);
    if (need > this.capacity) this.grow(need);
  }

  /**
   * Grows toward `rows` one array at a time until `deadline` (performance.now()),
   * at least one array a call; true when every array holds `rows`. Rows in
   * use keep their values: an array is copied and swapped in one piece, so a
   * tick between two calls reads and writes the current one. 100,000 rows are
   * ~37 MB to copy: one realloc of them all held the loop ~20 ms.
   */
  growStep(rows: number, deadline: number): boolean {
    if (rows <= this.capacity) return true;
    const f = this as unknown as Record<string, Row>;
    let done = 0;
    for (const [name, per] of FIELDS) {
      if (f[name].length >= rows * per) continue;
      if (done && performance.now() >= deadline) return false;
      f[name] = grown(f[name], rows * per);
      done++;
    }
    this.capacity = rows;
    return true;
  }

  /** A fresh row, every field at its neutral value. */
  alloc(): number {
    const id = this.free.length ? this.free.pop()! : this.top++;
    if (id >= this.capacity) this.grow(Math.ceil(this.capacity * 1.5));
    this.reset(id);
    this.serial[id] = ++this.serials;
    return id;
  }

  /** Gives a row back; it may be handed out again at once. */
  release(id: number): void {
    if (id <= 0) return;
    this.reset(id);
    this.free.push(id);
  }

  private reset(id: number): void {
    for (const a of [this.nextAt, this.lastPlanned, this.headDeadline, this.slotFreedAt, this.jitter, this.born, this.since, this.upAt, this.serial,
      this.lastTs, this.lastRttUs, this.okRttUs, this.failRttUs, this.checks, this.changes, this.streak]) a[id] = 0;
    this.okTtl[id] = -1; this.failTtl[id] = -1;
    this.lastState[id] = NO_STATE; this.failState[id] = NO_STATE; this.lastReason[id] = 0; this.failReason[id] = 0;
    this.health[id] = 0; this.reported[id] = 0; this.admin[id] = 0; this.firstDecides[id] = 0;
    this.inflight[id] = 0; this.queue[id] = 0; this.round[id] = 0;
    this.clearSlots(id);
    this.histLen[id] = 0; this.histPos[id] = 0;
    this.counts.fill(0, id * 4, id * 4 + 4);
  }

  /** Row id's k-th probe-table slot (k < nslots[id]). */
  slotOf(id: number, k: number): number {
    return k === 0 ? this.slot0[id] : this.more[(this.moreAt[id] - 1) * MORE + k - 1];
  }

  /** Gives row id a k-th slot (k ≤ nslots[id]: in order, as the monitor allocates them). */
  setSlot(id: number, k: number, slot: number): void {
    if (k === 0) this.slot0[id] = slot;
    else {
      if (this.moreAt[id] === 0) this.moreAt[id] = this.block() + 1;
      this.more[(this.moreAt[id] - 1) * MORE + k - 1] = slot;
    }
    if (k >= this.nslots[id]) this.nslots[id] = k + 1;
  }

  /** Row id without slots. */
  clearSlots(id: number): void {
    this.slot0[id] = -1;
    if (this.moreAt[id] !== 0) this.freeBlocks.push(this.moreAt[id] - 1);
    this.moreAt[id] = 0;
    this.nslots[id] = 0;
  }

  private block(): number {
    if (this.freeBlocks.length) return this.freeBlocks.pop()!;
    if ((this.blocks + 1) * MORE > this.more.length) this.more = grown(this.more, Math.max(64, this.more.length * 2));
    return this.blocks++;
  }

  private grow(n: number): void {
    const f = this as unknown as Record<string, Row>;
    for (const [name, per] of FIELDS) if (f[name].length < n * per) f[name] = grown(f[name], n * per);
    if (n > this.capacity) this.capacity = n;
  }

  /** Appends one result to row id's history (code: PROBE_STATES index; kept: rttKept() of its RTT). */
  remember(id: number, code: number, kept: number): void {
    const pos = this.histPos[id];
    this.hist[id * HISTORY + pos] = kept * 8 + code;
    this.histPos[id] = (pos + 1) % HISTORY;
    if (this.histLen[id] < HISTORY) this.histLen[id]++;
  }
}
