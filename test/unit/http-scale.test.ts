// Unit tier: the HTTP API of serve over a large fleet, against a monitor on a
// scripted table. /status shows the rows a full sort would (down first, then
// the latest changes, then config order) without sorting; the streamed
// bodies are what one string would be, and wait for a slow reader instead
// of piling up; /metrics?per_backend=false is the global part of /metrics;
// scrapes that reuse one another's buffers, one cut off midway, two at once,
// each give the whole exposition.
// Properties print fast-check's seed on failure; rerun one with
// HALFOPEN_FC_SEED=<seed> HALFOPEN_FC_PATH=<path>.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import fc from 'fast-check';
import { Monitor, ProbeSlots, capacityFor } from '../../src/daemon/monitor';
import { parseConfig } from '../../src/daemon/config';
import { TopK, createHttpServer, statusJson } from '../../src/daemon/http';
import { renderMetrics } from '../../src/daemon/metrics';
import { literal } from '../../src/targets/resolve';
import { HO_PROBE_STATE_OPEN } from '../../src/contract.generated';
import type { Verdict } from '../../src/engine/probe-table';

const fcParams = (runs = 200): fc.Parameters<unknown> => {
  const seed = process.env.HALFOPEN_FC_SEED, p = process.env.HALFOPEN_FC_PATH;
  return { numRuns: runs, ...(seed ? { seed: Number(seed) } : {}), ...(p ? { path: p } : {}) };
};

/** Every SYN answered open at the next poll. */
class OpenTable implements ProbeSlots {
  private readonly answered_ = new Set<number>();
  private pending: number[] = [];
  constructor(readonly capacity: number) {}
  setSlot(): void {}
  clearSlot(i: number): void { this.answered_.delete(i); }
  rearmSlot(i: number): void { this.answered_.delete(i); }
  answered(i: number): boolean { return this.answered_.has(i); }
  verdict(i: number): Verdict | null { return this.answered_.has(i) ? { state: HO_PROBE_STATE_OPEN, rttMs: 0.25, ttl: 64, icmpType: 0, icmpCode: 0, replies: 1 } : null; }
  pollSlots(): Uint32Array { const out = Uint32Array.from(this.pending); for (const s of this.pending) this.answered_.add(s); this.pending = []; return out; }
  sendSlots(slots: Uint32Array): Promise<unknown> { for (const s of slots) this.pending.push(s); return Promise.resolve(); }
  counters(): Record<string, number> { return { rst_sent: 0 }; }
}

function fleet(n: number, now = Date.now()): Monitor {
  const text = `defaults: { interval: 1s, timeout: 500ms }\nbackends:\n${Array.from({ length: n }, (_, i) => `  - { name: b${i}, host: 198.18.${(i >> 8) & 255}.${i & 255}, port: 80 }\n`).join('')}`;
  const list = parseConfig(text).backends.map((cfg) => ({ cfg, addr: literal(cfg.host) }));
  const m = new Monitor(new OpenTable(capacityFor(list)), 62000, 62999, () => 0.5);
  m.apply(list, now);
  return m;
}

/** /status's rows as the full stable sort gave them: down first, then the latest change. */
const referenceRows = (m: Monitor, limit: number) => {
  const bs = m.list();
  return (bs.length <= limit ? bs : bs.sort((a, b) => (a.state === b.state ? b.since - a.since : a.state === 'down' ? -1 : 1)).slice(0, limit)).map((b) => b.cfg.name);
};

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

async function withServer<T>(m: Monitor, fn: (port: number, server: http.Server) => Promise<T>): Promise<T> {
  const server = createHttpServer(() => m);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    return await fn((server.address() as net.AddressInfo).port, server);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

describe('/status over a large fleet', () => {
  test('TopK keeps what a stable sort puts first, in that order', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 60 }), fc.integer({ min: 0, max: 70 }), (keys, k) => {
      const before = (i: number, j: number) => (keys[i] !== keys[j] ? keys[i] < keys[j] : i < j);
      const t = new TopK(k, (i, j) => before(j, i));
      keys.forEach((_, i) => t.offer(i));
      const want = keys.map((_, i) => i).sort((i, j) => keys[i] - keys[j]).slice(0, k);
      assert.deepEqual(t.sorted(before), want);
    }), fcParams(500));
  });

  test('the rows a full sort shows: down first, then the latest change, ties in config order', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 40 }),
      fc.array(fc.record({ who: fc.nat(), at: fc.integer({ min: 1, max: 4 }), admin: fc.constantFrom('maint', 'ready', 'drain') as fc.Arbitrary<'maint' | 'ready' | 'drain'> }), { maxLength: 40 }),
      fc.integer({ min: 0, max: 45 }),
      (n, ops, limit) => {
        const t0 = Date.now();
        const m = fleet(n, t0);
        let at = t0;
        for (const op of ops) m.setAdmin(`b${op.who % n}`, op.admin, at += op.at % 2); // repeated times make ties
        assert.deepEqual(statusJson(m, limit).backends.map((b) => b.name), referenceRows(m, limit));
        const s = statusJson(m, limit);
        assert.equal(s.total, n);
        assert.equal(s.up + s.down, n);
      }), fcParams());
  });

  test('streamed, /status is the text of statusJson', async () => {
    const m = fleet(700);
    for (let i = 0; i < 700; i += 3) m.setAdmin(`b${i}`, 'maint');
    await withServer(m, async (port) => {
      for (const limit of [0, 5, 200, 699, 700, 5000]) {
        const r = await get(port, `/status?limit=${limit}`);
        assert.equal(r.status, 200);
        const got = JSON.parse(r.body);
        const want = statusJson(m, limit);
        assert.deepEqual({ ...got, backends: got.backends.map((b: { name: string }) => b.name) }, { ...want, backends: want.backends.map((b) => b.name) });
      }
      assert.equal((await get(port, '/status?limit=x')).status, 400);
    });
  });
});

describe('/metrics and /backends over a large fleet', () => {
  test('per_backend=false is the global part of the exposition, and only that', async () => {
    const m = fleet(1200);
    const t0 = Date.now();
    for (let t = 0; t < 1500; t += 50) m.tick(t0 + t);
    const full = renderMetrics(m);
    const global = renderMetrics(m, { perBackend: false });
    assert.doesNotMatch(global, /backend="/);
    assert.ok(full.endsWith(global), 'the global series close the full exposition');
    for (const name of ['halfopen_probe_duration_seconds', 'halfopen_checks_sent_total', 'halfopen_schedule_lag_seconds', 'halfopen_backends', 'halfopen_xdp_packets_total'])
      assert.match(global, new RegExp(`^# TYPE ${name} `, 'm'));
    assert.match(full, /^halfopen_backend_up\{backend="b1199",address="198\.18\.4\.175",port="80"\} 1$/m);
    assert.equal(full.split('\n').filter((l) => l.startsWith('halfopen_backend_up{')).length, 1200);
    await withServer(m, async (port) => {
      const r = await get(port, '/metrics?per_backend=false');
      assert.equal(r.status, 200);
      assert.doesNotMatch(r.body, /backend="/);
      assert.match(r.body, /^halfopen_backends\{state="up"\} 1200$/m);
      assert.equal((await get(port, '/metrics?per_backend=true')).body.split('\n').filter((l) => l.startsWith('halfopen_backend_up{')).length, 1200);
      assert.deepEqual(await get(port, '/metrics?per_backend=no'), { status: 400, body: 'per_backend: expected true or false\n' });
    });
  });

  test('a reader that does not read holds up the stream: the body is not piled up in the daemon', async () => {
    const m = fleet(20_000);
    await withServer(m, async (port, server) => {
      let sock: net.Socket | null = null;
      server.once('connection', (s) => { sock = s; });
      const client = net.connect(port, '127.0.0.1');
      await new Promise<void>((r) => client.once('connect', () => r()));
      client.pause();
      client.write('GET /backends HTTP/1.1\r\nhost: x\r\n\r\n');
      await new Promise((r) => setTimeout(r, 500));
      const queued = sock!.writableLength;
      const sent = sock!.bytesWritten;
      // The whole body is ~15 MB; the kernel takes a few MB, the daemon keeps about one chunk.
      assert.ok(queued < 1_000_000, `${queued} bytes queued in the daemon`);
      assert.ok(sent < 12_000_000, `${sent} bytes written before the reader read any`);
      // Reading it all gives the whole list.
      let body = '';
      client.setEncoding('utf8');
      client.on('data', (d) => { body += d; });
      client.resume();
      await new Promise<void>((r, j) => { const t = setTimeout(() => j(new Error('no end of body')), 20_000); const check = () => { if (body.includes('\r\n0\r\n\r\n')) { clearTimeout(t); r(); } else setTimeout(check, 20); }; check(); });
      client.destroy();
      const json = body.slice(body.indexOf('\r\n\r\n') + 4).split('\r\n').filter((_, i) => i % 2 === 1).join('');
      const list = JSON.parse(json) as Array<{ name: string }>;
      assert.equal(list.length, 20_000);
      assert.equal(list[19_999].name, 'b19999');
    });
  });

  test('scrapes reuse their buffers: after one cut off midway, and two at once, each is the whole exposition', async () => {
    const m = fleet(6000);
    const t0 = Date.now();
    for (let t = 0; t < 1500; t += 50) m.tick(t0 + t);
    // The per-backend series, but the check ages (they move between scrapes), with the closing global ones counted.
    const steady = (body: string) => { const ls = body.split('\n'); return `${ls.filter((l) => l.includes('backend="') && !l.startsWith('halfopen_backend_check_age_seconds{')).join('\n')}\n${ls.filter((l) => l.startsWith('# TYPE')).length}`; };
    const want = steady(renderMetrics(m));
    await withServer(m, async (port) => {
      // A reader that takes the first bytes and goes away, its render's buffers still out.
      const client = net.connect(port, '127.0.0.1');
      await new Promise<void>((r) => client.once('connect', () => r()));
      client.write('GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n');
      await new Promise<void>((r) => client.once('data', () => r()));
      client.destroy();
      await new Promise((r) => setTimeout(r, 50));
      const [a, b] = await Promise.all([get(port, '/metrics'), get(port, '/metrics')]);
      const c = await get(port, '/metrics');
      for (const r of [a, b, c]) {
        assert.equal(r.status, 200);
        assert.equal(steady(r.body), want);
      }
    });
  });
});
