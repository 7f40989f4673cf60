// HTTP API of `halfopen serve`: /backends, /backends/:name, /status, /metrics,
// /healthz, the status page at /, and for Prometheus /probe (exporter/) and /sd.
import http from 'node:http';
import { Monitor, Backend } from './monitor';
import { ADMIN_STATES, AdminState } from './backend';
import { AdminGate, ADMIN_BODY_MAX, readBody } from './admin';
import { HealthState } from './health';
import { metricChunks } from './metrics';
import { STATUS_PAGE } from './status-page';
import type { Exporter } from './exporter/exporter';
import { sdChunks } from './exporter/sd';

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
  const bs = m.list();
  let up = 0;
  for (const b of bs) if (b.state === 'up') up++;
  const shown = bs.length <= limit ? bs
    : bs.sort((a, b) => (a.state === b.state ? b.since - a.since : a.state === 'down' ? -1 : 1)).slice(0, limit);
  return { total: bs.length, up, down: bs.length - up, backends: shown.map(backendJson) };
}

/** Large bodies go out in chunks, yielding between them: checks keep their schedule. */
async function stream(res: http.ServerResponse, type: string, chunks: Iterable<string>): Promise<void> {
  res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
  for (const c of chunks) {
    if (res.destroyed) return;
    if (c) res.write(c);
    await new Promise((r) => setImmediate(r));
  }
  res.end();
}

function* backendsJsonChunks(m: Monitor): Generator<string> {
  const bs = m.list();
  let out = '[';
  for (let i = 0; i < bs.length; i++) {
    out += (i ? ',' : '') + JSON.stringify(backendJson(bs[i]));
    if ((i + 1) % 500 === 0) { yield out; out = ''; }
  }
  yield out + ']';
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
    if (url.pathname === '/metrics') return void stream(res, 'text/plain; version=0.0.4; charset=utf-8', metricChunks(m, extraMetrics));
    if (url.pathname === '/backends') return void stream(res, 'application/json', backendsJsonChunks(m));
    if (url.pathname === '/status') {
      const limit = Number(url.searchParams.get('limit') ?? STATUS_ROWS);
      if (!Number.isInteger(limit) || limit < 0) return send(400, 'application/json', '{"error":"limit: expected a whole number"}');
      return send(200, 'application/json', JSON.stringify(statusJson(m, limit)));
    }
    if (url.pathname.startsWith('/backends/')) {
      const b = m.get(decodeURIComponent(url.pathname.slice('/backends/'.length)));
      return b ? send(200, 'application/json', JSON.stringify(backendJson(b))) : send(404, 'application/json', '{"error":"no such backend"}');
    }
    return send(404, 'text/plain', 'not found\n');
  });
}
