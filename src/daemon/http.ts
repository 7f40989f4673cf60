// HTTP API of `halfopen serve`: /backends, /backends/:name, /status, /metrics,
// /healthz, the status page at /, and for Prometheus /probe (exporter/) and /sd.
import http from 'node:http';
import { Monitor, Backend } from './monitor';
import { ADMIN_STATES, AdminState } from './backend';
import { AdminGate, ADMIN_BODY_MAX, readBody } from './admin';
import { HealthState } from './health';
import { BufferRing, MetricsPiece, ScratchPool, metricPieces } from './metrics';
import { STATUS_PAGE } from './status-page';
import type { Exporter } from './exporter/exporter';
import { sdChunks } from './exporter/sd';

/** Backends whose state is read between two yields (a read is ~0.2 µs). */
const STATE_CHUNK = 5000;

export function backendJson(b: Backend, now = Date.now()) {
  return {
    name: b.cfg.name,
    address: b.address,
    port: b.cfg.port,
    // Up only while measured: a backend whose latest check is older than
    // stale_after_ms is down here, whatever its last result said.
    state: b.state,
    /** Why it is down when its health is not the reason: stale, unresolved or maint. */
    down_reason: b.state === 'down' ? b.downReason(now) : null,
    health: b.healthState as HealthState,
    stale: b.isStale(now),
    check_age_ms: b.checkAge(now),
    stale_after_ms: b.staleMs,
    admin: b.admin,
    host: b.cfg.host,
    unresolved: b.addr === null ? b.unresolved || 'no address' : null,
    weight: b.cfg.weight ?? null,
    /** The weight announced to the agent now (slow start ramps it). */
    effective_weight: b.weightNow(now),
    labels: b.cfg.labels,
    last: b.last && { ...b.last, ts: new Date(b.last.ts).toISOString() },
    rtt_ms: b.last?.rtt_ms ?? null,
    since: new Date(b.since).toISOString(),
    counters: { checks: b.checks, ...b.counts, changes: b.changes, successes: b.health.successes, failures: b.health.failures, health: b.health.health },
    history: b.history(),
  };
}

/** Rows the status page asks for: a browser redraws this many every second. */
export const STATUS_ROWS = 200;

/**
 * The status page's view: counts by state, and at most `limit` backends. A
 * fleet that fits is listed in config order; a larger one shows the down
 * backends first, then the most recent changes. At 10,000 backends the full
 * /backends is 16 MB of JSON, and polling it every second took serve from 6.4
 * to 18.9 % of a core.
 */
export function statusJson(m: Monitor, limit: number) {
  const rows = statusRows(m, limit);
  let r = rows.next();
  while (!r.done) r = rows.next();
  const { total, up, shown } = r.value;
  const now = Date.now();
  return { total, up, down: total - up, backends: shown.map((b) => backendJson(b, now)) };
}

/**
 * The counts and the backends /status shows, in the order it shows them,
 * yielding every STATE_CHUNK backends. Each backend's state is read once,
 * and the `limit` shown are picked with a heap of that size instead of
 * sorting the fleet: at 100,000 backends the sort (two state reads per
 * comparison) held the event loop ~260 ms.
 */
function* statusRows(m: Monitor, limit: number): Generator<'', { total: number; up: number; shown: Backend[] }> {
  const bs = m.list();
  const down = new Uint8Array(bs.length);
  let up = 0;
  for (let i = 0; i < bs.length; i++) {
    if (bs[i].state === 'up') up++; else down[i] = 1;
    if ((i + 1) % STATE_CHUNK === 0) yield '';
  }
  if (bs.length <= limit) return { total: bs.length, up, shown: bs };
  // Down first, then the latest change first, then config order: what a stable sort by the first two gives.
  const before = (i: number, j: number) => (down[i] !== down[j] ? down[i] > down[j] : bs[i].since !== bs[j].since ? bs[i].since > bs[j].since : i < j);
  const kept = new TopK(limit, (i, j) => before(j, i));
  for (let i = 0; i < bs.length; i++) {
    kept.offer(i);
    if ((i + 1) % STATE_CHUNK === 0) yield '';
  }
  return { total: bs.length, up, shown: kept.sorted(before).map((i) => bs[i]) };
}

/** The k first of the numbers offered, by `after(a, b)`: a ranks after b. A heap whose root is the last of those kept. */
export class TopK {
  private readonly h: number[] = [];
  constructor(private readonly k: number, private readonly after: (a: number, b: number) => boolean) {}

  offer(x: number): void {
    const h = this.h;
    if (h.length < this.k) {
      h.push(x);
      for (let i = h.length - 1; i > 0;) {
        const p = (i - 1) >> 1;
        if (!this.after(h[i], h[p])) break;
        [h[i], h[p]] = [h[p], h[i]];
        i = p;
      }
    } else if (this.k > 0 && this.after(h[0], x)) {
      h[0] = x;
      for (let i = 0; ;) {
        const l = 2 * i + 1, r = l + 1;
        let w = i;
        if (l < h.length && this.after(h[l], h[w])) w = l;
        if (r < h.length && this.after(h[r], h[w])) w = r;
        if (w === i) break;
        [h[i], h[w]] = [h[w], h[i]];
        i = w;
      }
    }
  }

  /** Those kept, first first. */
  sorted(before: (a: number, b: number) => boolean): number[] { return [...this.h].sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0)); }
}

/** Backends per chunk of a JSON list (~1,500 bytes each with its history). */
const STREAM_ROWS = 200;

/** A JSON list of backends between `open` and `close`, STREAM_ROWS at a time. */
function* listChunks(open: string, bs: Backend[], close: string): Generator<string> {
  const now = Date.now();
  let out = open;
  for (let i = 0; i < bs.length; i++) {
    out += (i ? ',' : '') + JSON.stringify(backendJson(bs[i], now));
    if ((i + 1) % STREAM_ROWS === 0) { yield out; out = ''; }
  }
  yield out + close;
}

/** /status in chunks: the text of JSON.stringify(statusJson(m, limit)). */
function* statusJsonChunks(m: Monitor, limit: number): Generator<string> {
  const { total, up, shown } = yield* statusRows(m, limit);
  yield* listChunks(`{"total":${total},"up":${up},"down":${total - up},"backends":[`, shown, ']}');
}

function* backendsJsonChunks(m: Monitor): Generator<string> {
  yield* listChunks('[', m.list(), ']');
}

/**
 * Large bodies go out in chunks, yielding to the event loop between them
 * (checks keep their schedule), and waiting while the client has not taken
 * what was written: a slow reader holds up a chunk, not the whole body.
 */
async function stream(res: http.ServerResponse, type: string, chunks: Iterable<string>): Promise<void> {
  res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
  const closed = new Promise<void>((r) => res.once('close', () => r()));
  for (const c of chunks) {
    if (res.destroyed) return;
    if (c && !res.write(c)) await Promise.race([new Promise<void>((r) => res.once('drain', () => r())), closed]);
    else await new Promise((r) => setImmediate(r));
  }
  if (!res.destroyed) res.end();
}

/**
 * Writes a render's pieces (metrics.ts): each chunk's buffer goes back to the
 * ring when the socket has written it; on null the event loop runs, and the
 * render waits for a free buffer when it has none (a slow reader holds at
 * most the ring's buffers).
 */
async function streamPieces(res: http.ServerResponse, type: string, pieces: Generator<MetricsPiece>, ring: BufferRing): Promise<void> {
  res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
  const closed = new Promise<void>((r) => res.once('close', () => r()));
  for (let r = pieces.next(); !r.done; r = pieces.next()) {
    if (res.destroyed) return;
    const piece = r.value;
    if (piece === null) {
      await (ring.hasFree ? new Promise((d) => setImmediate(d)) : Promise.race([ring.whenFree(), closed]));
    } else if (!res.write(piece, () => ring.release(piece))) {
      await Promise.race([new Promise<void>((d) => res.once('drain', () => d())), closed]);
    }
  }
  if (!res.destroyed) res.end();
}

/**
 * PUT /backends/NAME/admin with the body ready, drain or maint. The gate
 * comes first, so nothing about the backends is told to a caller without
 * the token.
 */
async function adminRequest(req: http.IncomingMessage, m: Monitor, gate: AdminGate, name: string,
  send: (code: number, body: unknown, headers?: Record<string, string>) => void): Promise<void> {
  const v = gate.check(req);
  if (!v.ok) { req.resume(); return send(v.status, { error: v.error }, v.headers); }
  if (req.method !== 'PUT') { req.resume(); return send(405, { error: 'use PUT' }, { allow: 'PUT' }); }
  if (!m.get(name)) { req.resume(); return send(404, { error: 'no such backend' }); }
  const body = await readBody(req, ADMIN_BODY_MAX);
  if (body === null) return send(413, { error: `the body is at most ${ADMIN_BODY_MAX} bytes: ready, drain or maint` });
  const admin = body.trim();
  if (!(ADMIN_STATES as readonly string[]).includes(admin)) return send(400, { error: 'expected the body ready, drain or maint' });
  m.setAdmin(name, admin as AdminState);
  return send(200, backendJson(m.get(name)!));
}

/** `getMonitor` returns null while the daemon starts: every endpoint but / answers 503 then. */
export function createHttpServer(getMonitor: () => Monitor | null, gate = new AdminGate(null, () => {}), extraMetrics?: () => string, exporter: Exporter | null = null): http.Server {
  const scratches = new ScratchPool();
  return http.createServer((req, res) => {
    const send = (code: number, type: string, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store', ...headers });
      res.end(body);
    };
    const url = new URL(req.url ?? '/', 'http://x');
    const admin = /^\/backends\/([^/]+)\/admin$/.exec(url.pathname);
    if (admin) {
      const m = getMonitor();
      if (!m) { req.resume(); return send(503, 'text/plain', 'starting\n'); }
      return void adminRequest(req, m, gate, decodeURIComponent(admin[1]),
        (code, body, headers) => send(code, 'application/json', JSON.stringify(body), headers));
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    const m = getMonitor();
    if (url.pathname === '/') return send(200, 'text/html; charset=utf-8', STATUS_PAGE);
    if (!m) return send(503, 'text/plain', 'starting\n');
    if (url.pathname === '/healthz') {
      // For supervisors (systemd, Kubernetes): non-200 when checks are not going out on time.
      const h = m.health();
      return send(h.ok ? 200 : 503, 'text/plain', `${h.reason}\n`);
    }
    if (url.pathname === '/probe') {
      if (!exporter) return send(404, 'text/plain', '/probe is off: it needs exporter.allow in the config\n');
      return void exporter.handle(req, url).then((a) => send(a.status, a.type, a.body, a.headers), () => send(500, 'text/plain', 'probe failed\n'));
    }
    if (url.pathname === '/sd') return void stream(res, 'application/json', sdChunks(m));
    if (url.pathname === '/metrics') {
      // ?per_backend=false: the global series only (at 100,000 backends the per-backend ones are 1.6 million series).
      const per = url.searchParams.get('per_backend');
      if (per !== null && per !== 'true' && per !== 'false') return send(400, 'text/plain', 'per_backend: expected true or false\n');
      const scratch = scratches.take();
      // Back to the pool once the socket is done with its buffers, whether the scrape ended or was cut off.
      res.once('close', () => scratches.give(scratch));
      return void streamPieces(res, 'text/plain; version=0.0.4; charset=utf-8', metricPieces(m, scratch, extraMetrics, { perBackend: per !== 'false' }), scratch.ring);
    }
    if (url.pathname === '/backends') return void stream(res, 'application/json', backendsJsonChunks(m));
    if (url.pathname === '/status') {
      const limit = Number(url.searchParams.get('limit') ?? STATUS_ROWS);
      if (!Number.isInteger(limit) || limit < 0) return send(400, 'application/json', '{"error":"limit: expected a whole number"}');
      return void stream(res, 'application/json', statusJsonChunks(m, limit));
    }
    if (url.pathname.startsWith('/backends/')) {
      const b = m.get(decodeURIComponent(url.pathname.slice('/backends/'.length)));
      return b ? send(200, 'application/json', JSON.stringify(backendJson(b))) : send(404, 'application/json', '{"error":"no such backend"}');
    }
    return send(404, 'text/plain', 'not found\n');
  });
}
