// Prometheus text exposition (format 0.0.4) of the monitor's state, written
// as bytes into a few reused buffers (100,000 backends are ~130 MB in 16
// series per backend, 1.6 million lines). Built from strings, one template
// per line, a scrape made that much garbage: ~0.6 s of CPU, and the
// collections it caused moved check lateness p99 from ~24 to ~178 ms when
// scraped every 5 s. Here each backend's label block is encoded once per
// scrape into one arena and copied into every line, integers are written as
// digits, and the render stops for the event loop every SLICE_MS and
// whenever no buffer is free (each one is reused only after the socket has
// written it). `perBackend: false` leaves the per-backend series out: the
// scheduler's and the probe's global series only, a few KB.
import { Monitor, Backend } from './monitor';
import { ADMIN_STATES } from './backend';
import { NO_STATE, reasonOfCode, rttOfKept } from './backend-store';
import { PROBE_STATES } from '../contract.generated';

/** Longest stretch of rendering between two turns of the event loop. */
const SLICE_MS = 4;
/** Backends between two looks at the clock. */
const CLOCK_EVERY = 256;
/** One output buffer; BUFFERS of them take turns. */
const BUFFER_BYTES = 256 * 1024;
const BUFFERS = 3;

/** Six significant digits: float noise like 7.1999e-5 helps nobody. */
const num = (x: number) => String(Number(x.toPrecision(6)));
const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/**
 * A backend's label block. Not kept between scrapes: cached per backend it
 * was ~110 B each for as long as the backend lived (11 MB at 100,000), and
 * it is made once per scrape, then copied into all 16 lines.
 */
function labels(b: Backend): string {
  const extra = Object.entries(b.cfg.labels).filter(([k]) => !['backend', 'address', 'port', 'state', 'reason'].includes(k)).map(([k, v]) => `,${k}="${esc(v)}"`).join('');
  return `backend="${esc(b.cfg.name)}",address="${esc(b.address)}",port="${b.cfg.port}"${extra}`;
}

const head = (name: string, type: string, help: string) => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
const bytes = (s: string) => Buffer.from(s, 'utf8');

/**
 * The buffers a render writes into, views of its scratch's memory, each
 * handed out again only after the consumer released it (http.ts: from the
 * socket's write callback).
 */
export class BufferRing {
  private all: Buffer[] = [];
  private readonly free: Buffer[] = [];
  private readonly waiting: Array<() => void> = [];
  constructor(readonly count: number, mem: Buffer) { this.rebase(mem); }
  take(): Buffer | null { return this.free.pop() ?? null; }
  get hasFree(): boolean { return this.free.length > 0; }
  /** Gives back the buffer under a chunk that take() handed out (chunks of other origin are ignored). */
  release(chunk: Uint8Array): void {
    const b = this.all.find((x) => x.buffer === chunk.buffer && x.byteOffset === chunk.byteOffset);
    if (!b || this.free.includes(b)) return;
    this.free.push(b);
    this.waiting.shift()?.();
  }
  /** Resolves when a buffer is free. */
  whenFree(): Promise<void> {
    return this.free.length ? Promise.resolve() : new Promise((r) => this.waiting.push(r));
  }
  /** Every buffer free again, for a new render (the consumer of the last one is done with all of them). */
  reset(): void {
    this.waiting.length = 0;
    this.free.length = 0;
    for (const b of this.all) this.free.push(b);
  }
  /** The buffers as the first count × BUFFER_BYTES of mem, all free (only between renders' output). */
  rebase(mem: Buffer): void {
    this.all = Array.from({ length: this.count }, (_, k) => mem.subarray(k * BUFFER_BYTES, (k + 1) * BUFFER_BYTES));
    this.reset();
  }
}

/**
 * What a render needs in proportion to the fleet and its output buffers, in
 * one piece of memory: the ring's buffers, then the label arena (backend i's
 * label block is mem[start[i], start[i + 1])). Being one ArrayBuffer, a
 * label block goes into a line by copyWithin, a builtin (~20 ns for 50 B),
 * instead of a loop over its bytes (~100 ns). Each scrape used to make its
 * own: ~10 MB at 100,000 backends, outside V8's heap and freed only by a full
 * collection, so scraped every 5 s serve's RSS climbed by ~13 MB a scrape
 * (149 → 215 MB) until one came. Reused, the scraped fleet holds one set.
 */
export class RenderScratch {
  mem: Buffer;
  /** Where the arena begins in mem: after the ring's buffers. */
  readonly arenaAt: number;
  start = new Uint32Array(0);
  up = new Uint8Array(0);
  readonly ring: BufferRing;
  constructor(buffers = BUFFERS) {
    this.arenaAt = buffers * BUFFER_BYTES;
    this.mem = Buffer.allocUnsafeSlow(this.arenaAt + 1024);
    this.ring = new BufferRing(buffers, this.mem);
  }
  /** The per-backend arrays for n backends, and every buffer free; the arena is grown by the render. */
  size(n: number): void {
    if (this.start.length < n + 1) { this.start = new Uint32Array(n + 1); this.up = new Uint8Array(n); }
    this.ring.reset();
  }
  /**
   * Room for the arena to hold `end` bytes of mem, the first `used` of it
   * kept. Only before a render yields its first chunk: a larger mem moves
   * the ring's buffers.
   */
  room(end: number, used: number): void {
    if (end <= this.mem.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(2 * this.mem.length, end));
    this.mem.copy(bigger, this.arenaAt, this.arenaAt, used);
    this.mem = bigger;
    this.ring.rebase(bigger);
  }
}

/**
 * The scratch of finished renders, for the next ones. Held weakly: a full
 * collection after scrapes stop frees it, and one render at a time takes a
 * set (two at once: two sets).
 */
export class ScratchPool {
  private readonly idle: Array<WeakRef<RenderScratch>> = [];
  take(): RenderScratch {
    for (let r = this.idle.pop(); r; r = this.idle.pop()) {
      const s = r.deref();
      if (s) return s;
    }
    return new RenderScratch();
  }
  /** Back in the pool: only once nothing reads its buffers (the response closed). */
  give(s: RenderScratch): void { this.idle.push(new WeakRef(s)); }
}

/**
 * What the renderer yields: a filled chunk to write out (a view of one of the
 * ring's buffers, valid until released), or null: a turn of the event loop
 * is due (the slice is over, or no buffer is free: then wait for one).
 */
export type MetricsPiece = Uint8Array | null;

/** Copies shorter than this are a loop; longer ones a builtin (set, copyWithin), whose call costs about that many bytes of loop. */
const COPY_LOOP_MAX = 12;

/** The byte writer a render runs on: the current buffer and the position in it. */
class Out {
  /** Empty until the first room(): then one of the ring's. */
  buf: Buffer = Buffer.alloc(0);
  pos = 0;
  /** Where buf is in the scratch's mem; -1 for a buffer of its own (a line longer than a ring buffer). */
  private at = -1;
  constructor(private readonly scratch: RenderScratch) {}
  /** Whether n more bytes fit in the current buffer. */
  fits(n: number): boolean { return this.pos + n <= this.buf.length; }
  /** The filled part, to yield; the next buffer is taken by next(). */
  chunk(): Uint8Array { return this.buf.subarray(0, this.pos); }
  /** Moves to a free buffer (false: none free yet) large enough for n bytes. */
  next(n: number): boolean {
    if (n > BUFFER_BYTES) { this.buf = Buffer.allocUnsafeSlow(n); this.at = -1; this.pos = 0; return true; }
    const b = this.scratch.ring.take();
    if (!b) return false;
    this.buf = b; this.at = b.byteOffset; this.pos = 0;
    return true;
  }
  /** All of src. */
  put(src: Uint8Array): void {
    const b = this.buf, n = src.length;
    if (n > COPY_LOOP_MAX) b.set(src, this.pos);
    else for (let i = 0, p = this.pos; i < n; i++) b[p++] = src[i];
    this.pos += n;
  }
  /** The scratch's mem[from, to): a label block. */
  copy(from: number, to: number): void {
    const mem = this.scratch.mem;
    if (this.at >= 0 && to - from > COPY_LOOP_MAX) mem.copyWithin(this.at + this.pos, from, to);
    else for (let i = from, b = this.buf, p = this.pos; i < to; i++) b[p++] = mem[i];
    this.pos += to - from;
  }
  /** A string, as UTF-8 (the caller made room for it). */
  text(s: string): void { this.pos += this.buf.write(s, this.pos, 'utf8'); }
  /** A whole number as String() prints it. */
  int(n: number): void {
    if (!(n >= 0 && n <= Number.MAX_SAFE_INTEGER && Number.isInteger(n))) return this.text(String(n));
    const b = this.buf;
    let len = 1;
    for (let t = n; t >= 10; t = Math.floor(t / 10)) len++;
    let q = this.pos + len;
    this.pos = q;
    let x = n;
    while (x >= 10) { const d = x % 10; b[--q] = 48 + d; x = (x - d) / 10; }
    b[--q] = 48 + x;
  }
  /** A measurement as num() prints it (six significant digits). */
  num(x: number): void {
    if (x >= 0 && x < 1e6 && Number.isInteger(x)) this.int(x);
    else this.text(num(x));
  }
  /**
   * x = n / p (p 1000 or 1,000,000: ms or µs as seconds) as num() prints it,
   * without its strings. For a whole n from 0 to 999,999 six significant
   * digits hold n / p exactly, so num() prints n's digits around the point,
   * trailing zeros dropped; else num(x).
   */
  scaled(n: number, p: 1000 | 1_000_000, x: number): void {
    if (!(n >= 0 && n < 1_000_000 && Number.isInteger(n))) return this.num(x);
    const whole = Math.floor(n / p);
    let frac = n - whole * p, digits = p === 1000 ? 3 : 6;
    this.int(whole);
    if (frac === 0) return;
    while (frac % 10 === 0) { frac /= 10; digits--; }
    const b = this.buf;
    b[this.pos++] = 46; // .
    let q = this.pos + digits;
    this.pos = q;
    for (let k = 0; k < digits; k++) { const d = frac % 10; b[--q] = 48 + d; frac = (frac - d) / 10; }
  }
}

/** Room for one line besides its label block: the series name, a state label, a reason and a number. */
const LINE_SLACK = 128;

/** One per-backend series: its header, and its lines for backend i. */
interface Series { head: Uint8Array; write: (o: Out, b: Backend, l: Labels, i: number) => void; }

/** The scrape's label blocks: backend i's bytes are the scratch's mem[start[i], start[i + 1]). */
interface Labels { start: Uint32Array; up: Uint8Array; now: number; }

function line(o: Out, prefix: Uint8Array, l: Labels, i: number, suffix: Uint8Array): void {
  o.put(prefix);
  o.copy(l.start[i], l.start[i + 1]);
  o.put(suffix);
}

const B = (name: string) => ({ open: bytes(`${name}{`), close: bytes('} ') });
const NL = 10;
const UP = B('halfopen_backend_up'), STALE = B('halfopen_backend_stale'), AGE = B('halfopen_backend_check_age_seconds'),
  RTT = B('halfopen_backend_last_rtt_seconds'), WEIGHT = B('halfopen_backend_weight_percent'), CHANGES = B('halfopen_state_changes_total');
const ADMIN_OPEN = bytes('halfopen_backend_admin_state{');
const ADMIN_CLOSE = ADMIN_STATES.map((a) => bytes(`,state="${a}"} `));
const RESULTS_OPEN = bytes('halfopen_probe_results_total{');
const RESULTS_CLOSE = PROBE_STATES.map((s) => bytes(`,state="${s}"} `));
const LAST_OPEN = bytes('halfopen_backend_last_result{');
const LAST_STATE = PROBE_STATES.map((s) => bytes(`,state="${s}",reason="`));
const LAST_CLOSE = bytes('"} 1\n');

const SERIES: Series[] = [
  { head: bytes(head('halfopen_backend_up', 'gauge', 'Whether the backend is up (1) or down (0) after rise/fall; 0 while its latest check is stale.')),
    write: (o, _b, l, i) => { line(o, UP.open, l, i, UP.close); o.int(l.up[i]); o.buf[o.pos++] = NL; } },
  { head: bytes(head('halfopen_backend_stale', 'gauge', 'Whether the backend\'s latest completed check is older than 2 x interval + timeout (then it is not reported up).')),
    write: (o, b, l, i) => { line(o, STALE.open, l, i, STALE.close); o.int(b.isStale(l.now) ? 1 : 0); o.buf[o.pos++] = NL; } },
  { head: bytes(head('halfopen_backend_check_age_seconds', 'gauge', 'Seconds since the backend\'s latest check completed (since start before the first).')),
    write: (o, b, l, i) => {
      const s = b.store, id = b.id;
      const ts = s.lastState[id] === NO_STATE ? s.born[id] : s.lastTs[id];
      line(o, AGE.open, l, i, AGE.close); o.scaled(l.now - ts, 1000, (l.now - ts) / 1000); o.buf[o.pos++] = NL;
    } },
  { head: bytes(head('halfopen_backend_last_rtt_seconds', 'gauge', 'Round-trip time of the backend\'s latest answered check.')),
    write: (o, b, l, i) => {
      const s = b.store, id = b.id, kept = s.lastRttUs[id], rtt = rttOfKept(kept);
      if (s.lastState[id] === NO_STATE || Number.isNaN(rtt)) return;
      line(o, RTT.open, l, i, RTT.close); o.scaled(kept - 1, 1_000_000, rtt / 1000); o.buf[o.pos++] = NL;
    } },
  { head: bytes(head('halfopen_backend_admin_state', 'gauge', 'The backend\'s administrative state: 1 for the current one of ready, drain, maint.')),
    write: (o, b, l, i) => {
      const a = b.store.admin[b.id];
      for (let k = 0; k < ADMIN_CLOSE.length; k++) { line(o, ADMIN_OPEN, l, i, ADMIN_CLOSE[k]); o.int(a === k ? 1 : 0); o.buf[o.pos++] = NL; }
    } },
  { head: bytes(head('halfopen_backend_weight_percent', 'gauge', 'Weight announced to the agent, percent of the configured one (slow start ramps it).')),
    write: (o, b, l, i) => { line(o, WEIGHT.open, l, i, WEIGHT.close); o.int(b.weightNow(l.now)); o.buf[o.pos++] = NL; } },
  { head: bytes(head('halfopen_probe_results_total', 'counter', 'Completed checks by result state.')),
    write: (o, b, l, i) => {
      const c = b.store.counts, at = b.id * 4;
      for (let k = 0; k < RESULTS_CLOSE.length; k++) { line(o, RESULTS_OPEN, l, i, RESULTS_CLOSE[k]); o.int(c[at + k]); o.buf[o.pos++] = NL; }
    } },
  { head: bytes(head('halfopen_state_changes_total', 'counter', 'Up/down transitions since start.')),
    write: (o, b, l, i) => { line(o, CHANGES.open, l, i, CHANGES.close); o.int(b.store.changes[b.id]); o.buf[o.pos++] = NL; } },
  // Info-style: the value is always 1 and the answer is in the labels, so a
  // dashboard can list down backends with why (join on halfopen_backend_up == 0).
  { head: bytes(head('halfopen_backend_last_result', 'gauge', 'The latest completed check of the backend, as labels: state (open, closed, filtered, unreachable) and reason; always 1.')),
    write: (o, b, l, i) => {
      const s = b.store, id = b.id, code = s.lastState[id];
      if (code === NO_STATE) return;
      line(o, LAST_OPEN, l, i, LAST_STATE[code]); o.put(reasonTail(s.lastReason[id]));
    } },
];

/** By reason code (backend-store.ts: interned for the process, a few), the end of a halfopen_backend_last_result line: the reason escaped, `"} 1` and the newline. */
const reasonTails: Uint8Array[] = [];
const reasonTail = (code: number): Uint8Array => (reasonTails[code] ??= Buffer.concat([bytes(esc(reasonOfCode(code))), LAST_CLOSE]));

/** Bytes a backend's line of any series may take: its label block, the slack, and its reason's line end. */
const lineBytes = (l: Labels, i: number, b: Backend) => l.start[i + 1] - l.start[i] + LINE_SLACK + reasonTail(b.store.lastReason[b.id]).length;

/** The scheduler's and the probe's series, closing every exposition (the part `per_backend=false` leaves). */
export function globalSeries(m: Monitor, ups: number, total: number, now: number): string {
  let out = head('halfopen_probe_duration_seconds', 'histogram', 'Round-trip time of answered checks, all backends.') +
    m.rtt.render('halfopen_probe_duration_seconds', num);
  out += head('halfopen_check_lateness_seconds', 'histogram', 'How late checks left against their schedule (a check waiting for a free slot counts from when one freed).') +
    m.lateness.render('halfopen_check_lateness_seconds', num);
  out += head('halfopen_checks_sent_total', 'counter', 'SYNs sent for checks.') + `halfopen_checks_sent_total ${m.checksSent}\n`;
  out += head('halfopen_checks_completed_total', 'counter', 'Checks whose result was applied (answered or timed out).') + `halfopen_checks_completed_total ${m.checksCompleted}\n`;
  out += head('halfopen_checks_dropped_total', 'counter', 'Checks in flight when their backend was removed or reconfigured: never applied.') + `halfopen_checks_dropped_total ${m.checksDropped}\n`;
  out += head('halfopen_checks_in_flight', 'gauge', 'Checks sent and not yet completed.') + `halfopen_checks_in_flight ${m.inflight}\n`;
  out += head('halfopen_schedule_lag_seconds', 'gauge', 'Worst lateness of a check behind its schedule over the last 10 to 20 s.') +
    `halfopen_schedule_lag_seconds ${num(m.lagMs / 1000)}\n`;
  const h = m.health(now);
  out += head('halfopen_scheduler_healthy', 'gauge', 'Whether the scheduler keeps up (what /healthz answers 200 for).') + `halfopen_scheduler_healthy ${h.ok ? 1 : 0}\n`;
  out += head('halfopen_xdp_packets_total', 'counter', 'Packets the XDP program saw since it was loaded, by what it made of them (enum ho_counter in bpf/halfopen.h): rst_sent counts the RSTs it sent by XDP_TX.');
  for (const [kind, n] of Object.entries(m.xdpCounters())) out += `halfopen_xdp_packets_total{kind="${kind}"} ${n}\n`;
  out += head('halfopen_backends', 'gauge', 'Backends by state.');
  out += `halfopen_backends{state="up"} ${ups}\nhalfopen_backends{state="down"} ${total - ups}\n`;
  return out;
}

export interface MetricsOptions {
  /** The per-backend series (halfopen_backend_*, halfopen_probe_results_total, ...); default true. */
  perBackend?: boolean;
}

/**
 * The exposition as pieces (see MetricsPiece): the consumer writes each
 * chunk, gives its buffer back to `ring` once written, and on null lets the
 * event loop run (and waits for ring.whenFree() when no buffer is free).
 */
export function* metricPieces(m: Monitor, scratch: RenderScratch, extra?: () => string, opts: MetricsOptions = {}): Generator<MetricsPiece> {
  const bs = m.list();
  const now = Date.now();
  scratch.size(bs.length);
  const o = new Out(scratch);
  let sliceEnd = performance.now() + SLICE_MS;
  /** Room for n bytes: the current chunk out and a free buffer in. */
  function* room(n: number): Generator<MetricsPiece> {
    if (o.fits(n)) return;
    if (o.pos) yield o.chunk();
    while (!o.next(n)) yield null;
  }
  function* slice(): Generator<MetricsPiece> {
    if (performance.now() < sliceEnd) return;
    yield null;
    sliceEnd = performance.now() + SLICE_MS;
  }
  // Each backend's state and labels once per scrape, not once per series.
  const up = scratch.up;
  let ups = 0;
  for (let i = 0; i < bs.length; i++) {
    up[i] = bs[i].state === 'up' ? 1 : 0;
    ups += up[i];
    if ((i + 1) % CLOCK_EVERY === 0) yield* slice();
  }
  if (opts.perBackend !== false) {
    const start = scratch.start;
    let at = scratch.arenaAt;
    for (let i = 0; i < bs.length; i++) {
      const s = labels(bs[i]);
      // ~64 B a backend: grown for the ones to come too, and kept for the next render.
      if (at + 3 * s.length > scratch.mem.length) scratch.room(at + 3 * s.length + (bs.length - i) * 64, at);
      start[i] = at;
      at += scratch.mem.write(s, at, 'utf8');
      if ((i + 1) % CLOCK_EVERY === 0) yield* slice();
    }
    start[bs.length] = at;
    const l: Labels = { start, up, now };
    for (const series of SERIES) {
      yield* room(series.head.length);
      o.put(series.head);
      for (let i = 0; i < bs.length; i++) {
        const b = bs[i];
        // Four lines at most per series and backend.
        yield* room(4 * lineBytes(l, i, b));
        series.write(o, b, l, i);
        if ((i + 1) % CLOCK_EVERY === 0) yield* slice();
      }
    }
  }
  let out = globalSeries(m, ups, bs.length, now);
  if (extra) out += extra(); // the push targets' counters (src/daemon/push/driver.ts)
  const tail = bytes(out);
  yield* room(tail.length);
  o.put(tail);
  if (o.pos) yield o.chunk();
}

/** The whole exposition as one string, rendered at once (tests, small fleets). */
export function renderMetrics(m: Monitor, opts: MetricsOptions = {}, extra?: () => string): string {
  const scratch = new RenderScratch(1);
  const parts: Buffer[] = [];
  for (const piece of metricPieces(m, scratch, extra, opts)) {
    if (!piece) continue;
    parts.push(Buffer.from(piece));
    scratch.ring.release(piece);
  }
  return Buffer.concat(parts).toString('utf8');
}
