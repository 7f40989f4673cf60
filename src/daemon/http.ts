// HTTP API of `halfopen serve`: /backends, /backends/:name, /metrics,
// /healthz and the status page at /.
import http from 'node:http';
import { Monitor, Backend } from './monitor';
import { metricChunks } from './metrics';
import { STATUS_PAGE } from './status-page';

export function backendJson(b: Backend) {
  return {
    name: b.cfg.name,
    address: b.address,
    port: b.cfg.port,
    state: b.state,
    weight: b.cfg.weight ?? null,
    labels: b.cfg.labels,
    last: b.last && { ...b.last, ts: new Date(b.last.ts).toISOString() },
    rtt_ms: b.last?.rtt_ms ?? null,
    since: new Date(b.since).toISOString(),
    counters: { checks: b.checks, ...b.counts, changes: b.changes, successes: b.health.successes, failures: b.health.failures, health: b.health.health },
    history: b.history(),
  };
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

export function createHttpServer(getMonitor: () => Monitor): http.Server {
  return http.createServer((req, res) => {
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    const url = new URL(req.url ?? '/', 'http://x');
    const m = getMonitor();
    if (url.pathname === '/') return send(200, 'text/html; charset=utf-8', STATUS_PAGE);
    if (url.pathname === '/healthz') return send(200, 'text/plain', 'ok\n');
    if (url.pathname === '/metrics') return void stream(res, 'text/plain; version=0.0.4; charset=utf-8', metricChunks(m));
    if (url.pathname === '/backends') return void stream(res, 'application/json', backendsJsonChunks(m));
    if (url.pathname.startsWith('/backends/')) {
      const b = m.get(decodeURIComponent(url.pathname.slice('/backends/'.length)));
      return b ? send(200, 'application/json', JSON.stringify(backendJson(b))) : send(404, 'application/json', '{"error":"no such backend"}');
    }
    return send(404, 'text/plain', 'not found\n');
  });
}
