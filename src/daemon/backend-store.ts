// What `halfopen serve` keeps per backend, struct-of-arrays: one typed array
// per field, indexed by the backend's record (row) number, as the probe table
// already is per slot. 100,000 backends as JS objects cost about 1.7 KB each
// (the object, its health, counters, last result, two typed arrays of
// history and their buffers, boxed doubles); as rows here, about 330 bytes,
// and the scheduler's hot loop touches no objects at all. src/daemon/backend.ts
// is the object face the rest of the daemon reads (Backend), one thin view
// per backend over its row.
//
// Row 0 is never handed out: a Backend the monitor has dropped points there,
// so a reader that kept it sees a neutral record, not another backend's.

/** Most checks of one backend in flight at once (one probe-table slot each). */
export const MAX_DEPTH = 8;

/** Results kept per backend for /backends/NAME (history). */
export const HISTORY = 30;

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

function grown<T extends Float64Array | Float32Array | Int32Array | Uint32Array | Uint16Array | Uint8Array | Int16Array>(a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}

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
  jitter = new Float64Array(0);
  // Reporting
  born = new Float64Array(0);
  since = new Float64Array(0);
  upAt = new Float64Array(0);
  /** Unique per allocation: a record's identity across reloads (a Backend object is not). */
  serial = new Float64Array(0);
  // Last result (lastState NO_STATE: none yet)
  lastTs = new Float64Array(0);
  lastRtt = new Float64Array(0);
  lastState = new Uint8Array(0);
  lastReason = new Uint16Array(0);
  // For check_tcp_half_open --via: the latest answered and the latest failed check
  okRtt = new Float64Array(0);
  okTtl = new Int16Array(0);
  failRtt = new Float64Array(0);
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
  streak = new Float64Array(0);
  /** 1: up, 0: down (the reported state). */
  reported = new Uint8Array(0);
  /** 0 ready, 1 drain, 2 maint (ADMIN_STATES order). */
  admin = new Uint8Array(0);
  firstDecides = new Uint8Array(0);
  // Checks in flight: indices into the row's slots, packed 3 bits each, oldest first
  inflight = new Uint8Array(0);
  queue = new Uint32Array(0);
  round = new Uint32Array(0);
  /** Probe-table slots, MAX_DEPTH per row (-1: none). */
  slots = new Int32Array(0);
  nslots = new Uint8Array(0);
  // History ring, HISTORY per row
  histState = new Uint8Array(0);
  histRtt = new Float32Array(0);
  histLen = new Uint8Array(0);
  histPos = new Uint8Array(0);

  constructor(initial = 1024) {
    this.grow(Math.max(2, initial));
  }

  /** Rows in use (row 0 excluded). */
  get size(): number { return this.top - 1 - this.free.length; }

  /** Room for n more rows without growing step by step (a large apply sizes the store once). */
  reserve(n: number): void {
    const need = this.top + Math.max(0, n - this.free.length);
    if (need > this.capacity) this.grow(need);
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
      this.lastTs, this.lastRtt, this.okRtt, this.failRtt, this.checks, this.changes, this.streak]) a[id] = 0;
    this.okRtt[id] = -1; this.failRtt[id] = -1; this.okTtl[id] = -1; this.failTtl[id] = -1; this.lastRtt[id] = NaN;
    this.lastState[id] = NO_STATE; this.failState[id] = NO_STATE; this.lastReason[id] = 0; this.failReason[id] = 0;
    this.health[id] = 0; this.reported[id] = 0; this.admin[id] = 0; this.firstDecides[id] = 0;
    this.inflight[id] = 0; this.queue[id] = 0; this.round[id] = 0; this.nslots[id] = 0;
    this.histLen[id] = 0; this.histPos[id] = 0;
    this.counts.fill(0, id * 4, id * 4 + 4);
    this.slots.fill(-1, id * MAX_DEPTH, (id + 1) * MAX_DEPTH);
  }

  private grow(n: number): void {
    this.nextAt = grown(this.nextAt, n); this.lastPlanned = grown(this.lastPlanned, n); this.headDeadline = grown(this.headDeadline, n);
    this.slotFreedAt = grown(this.slotFreedAt, n); this.jitter = grown(this.jitter, n);
    this.born = grown(this.born, n); this.since = grown(this.since, n); this.upAt = grown(this.upAt, n); this.serial = grown(this.serial, n);
    this.lastTs = grown(this.lastTs, n); this.lastRtt = grown(this.lastRtt, n); this.lastState = grown(this.lastState, n); this.lastReason = grown(this.lastReason, n);
    this.okRtt = grown(this.okRtt, n); this.okTtl = grown(this.okTtl, n);
    this.failRtt = grown(this.failRtt, n); this.failTtl = grown(this.failTtl, n); this.failState = grown(this.failState, n); this.failReason = grown(this.failReason, n);
    this.checks = grown(this.checks, n); this.changes = grown(this.changes, n); this.counts = grown(this.counts, n * 4);
    this.health = grown(this.health, n); this.streak = grown(this.streak, n); this.reported = grown(this.reported, n); this.admin = grown(this.admin, n);
    this.firstDecides = grown(this.firstDecides, n);
    this.inflight = grown(this.inflight, n); this.queue = grown(this.queue, n); this.round = grown(this.round, n);
    this.slots = grown(this.slots, n * MAX_DEPTH); this.nslots = grown(this.nslots, n);
    this.histState = grown(this.histState, n * HISTORY); this.histRtt = grown(this.histRtt, n * HISTORY);
    this.histLen = grown(this.histLen, n); this.histPos = grown(this.histPos, n);
    this.capacity = n;
  }

  /** Appends one result to row id's history (code: PROBE_STATES index; rtt NaN for none). */
  remember(id: number, code: number, rtt: number): void {
    const pos = this.histPos[id];
    this.histState[id * HISTORY + pos] = code;
    this.histRtt[id * HISTORY + pos] = rtt;
    this.histPos[id] = (pos + 1) % HISTORY;
    if (this.histLen[id] < HISTORY) this.histLen[id]++;
  }
}
