// serve's /probe with real clients: a real Prometheus (Debian's) scraping it
// the way blackbox_exporter's README says (metrics_path /probe, params.module,
// the three relabel rules), from a static list of 50 targets and from /sd;
// a real MariaDB that half-open probes leave untouched while full connects
// (blackbox's tcp_connect) count as aborted; and 1,000 concurrent requests
// while serve checks 5,000 backends. Prometheus and MariaDB run inside the
// test's namespaces with their own data dirs, stopped by PID.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fleet } from '../../src/fleet/fleet';
import { netnsSkipReason } from '../helpers/privileges';
import { ServeProcess, waitFor } from '../helpers/serve';
import { LATENESS_BUCKETS } from '../../src/daemon/histogram';
import { stopChild } from '../../src/fleet/stop-child';

/** serve's lateness target: p99 of checks at most this late (s). */
const LATENESS_TARGET_S = 0.1;
const have = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
const skip = netnsSkipReason() || (!have('prometheus') ? 'prometheus is not installed (apt-get install prometheus; scripts/setup.sh does)' : false);
const skipDb = skip || (!have('mariadbd') || !have('mariadb-install-db') ? 'mariadb-server is not installed (apt-get install mariadb-server; scripts/setup.sh does)' : false);

const HTTP = 9391;
const PROM = 9392;

/** Runs a Node script inside a namespace of the fleet, asynchronously; resolves with its stdout. */
function nsNode(fleet: Fleet, ns: 'prober' | 'fleet', script: string, timeoutMs = 30_000, onStart?: () => void): Promise<string> {
  const name = ns === 'prober' ? fleet.prober : fleet.fleet;
  const child = spawn('ip', ['netns', 'exec', name, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout!.on('data', (d) => {
    out += d;
    // The script's first line "start": the moment its measured part begins.
    if (onStart && out.startsWith('start\n')) { const f = onStart; onStart = undefined; f(); }
  });
  child.stderr!.on('data', (d) => { err += d; });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => { clearTimeout(t); if (code === 0) resolve(out); else reject(new Error(`script exited ${code}: ${err}`)); });
  });
}


/** The fleet: open on 80 (and 3306 for MariaDB's address), a dropped /28, an ICMP-rejected /28. */
async function makeFleet(tag: string): Promise<Fleet> {
  const fleet = await Fleet.create({
    tag, v4: '198.18.0.0/16', v6: '2001:2::/120', open: [80],
    drop: ['198.18.0.128/28'], reject: ['198.18.0.144/28'],
    hosts: { 'web.test': ['198.18.0.5'], 'outside.test': ['198.18.1.1'] },
  });
  // Names the test does not list resolve nowhere, fast: DNS goes to the namespace's own loopback.
  fs.writeFileSync(`/etc/netns/${fleet.prober}/resolv.conf`, 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
  return fleet;
}

/** The 50 static targets and what probe_success each must be; undefined: the scrape itself fails (403). */
function targets(): Array<[string, number | undefined]> {
  const t: Array<[string, number | undefined]> = [];
  for (let i = 1; i <= 20; i++) t.push([`198.18.0.${i}:80`, 1]); // open
  for (let i = 21; i <= 30; i++) t.push([`198.18.0.${i}:81`, 0]); // closed (RST)
  for (let i = 130; i <= 137; i++) t.push([`198.18.0.${i}:80`, 0]); // dropped (filtered)
  for (let i = 150; i <= 156; i++) t.push([`198.18.0.${i}:80`, 0]); // ICMP host-unreachable
  t.push(['[2001:2::5]:80', 1], ['web.test:80', 1], ['nowhere.invalid:80', 0], ['outside.test:80', undefined], ['198.18.1.1:80', undefined]);
  return t;
}

const relabel = `    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:${HTTP}
`;

/** GET inside the prober namespace (synchronous, small answers). */
const query = (serve: ServeProcess, q: string): any => {
  const r = serve.get(PROM, `/api/v1/query?query=${encodeURIComponent(q)}`);
  return r.status === 200 ? JSON.parse(r.body).data.result : [];
};

describe('/probe scraped by a real Prometheus', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  let serve: ServeProcess;
  let prom: ChildProcess | undefined;
  let promLog = '';

  before(async () => {
    fleet = await makeFleet('prom');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-probe-prom-'));
    const file = path.join(dir, 'serve.yaml');
    fs.writeFileSync(file, `
defaults: { interval: 500ms, timeout: 200ms, rise: 1, fall: 1 }
listen: { http: "127.0.0.1:${HTTP}" }
exporter:
  allow: [198.18.0.0/24, "2001:2::/120", 198.18.2.0/24]
  max_concurrent: 200
  max_per_second: 2000
  modules: { marked: { source: [198.19.255.1, "2001:2:0:ffff::1"], mark: 0x10, preferred_ip_protocol: ip4 } }
backends:
  - { name: web-open, host: 198.18.0.40, port: 80, labels: { pool: web } }
  - { name: web-closed, host: 198.18.0.41, port: 81, labels: { pool: web } }
  - { name: web-dropped, host: 198.18.0.140, port: 80 }
  - { name: web-rejected, host: 198.18.0.157, port: 80 }
  - { name: web-v6, host: "2001:2::6", port: 80 }
  - { name: web-named, host: web.test, port: 80 }
`);
    serve = new ServeProcess(fleet, file);
    await serve.ready();
    const promDir = path.join(dir, 'prometheus');
    fs.mkdirSync(promDir);
    fs.writeFileSync(path.join(dir, 'prometheus.yml'), `global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: halfopen_static
    metrics_path: /probe
    params:
      module: [tcp_half_open]
    static_configs:
      - targets:
${targets().map(([t]) => `        - "${t}"`).join('\n')}
${relabel}  - job_name: halfopen_sd
    metrics_path: /probe
    params:
      module: [tcp_half_open]
    http_sd_configs:
      - url: http://127.0.0.1:${HTTP}/sd
        refresh_interval: 5s
${relabel}`);
    prom = spawn('ip', ['netns', 'exec', fleet.prober, 'prometheus', `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${promDir}`, `--web.listen-address=127.0.0.1:${PROM}`, '--storage.tsdb.retention.time=1h', '--log.level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
    prom.stdout!.on('data', (d) => { promLog += d; });
    prom.stderr!.on('data', (d) => { promLog += d; });
    assert.ok(await waitFor(() => serve.get(PROM, '/-/ready').status === 200 || prom!.exitCode !== null, 20_000, 200), `prometheus did not start: ${promLog}`);
  });

  after(async () => {
    await stopChild(prom);
    await serve?.stop();
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('static targets: probe_success per instance as the fleet was built; up 1 per scrape but the target outside allow', async () => {
    const want = targets();
    const inside = want.filter(([, v]) => v !== undefined);
    let got = new Map<string, number>();
    const done = await waitFor(() => {
      got = new Map(query(serve, 'probe_success{job="halfopen_static"}').map((r: any) => [r.metric.instance, Number(r.value[1])]));
      return got.size >= inside.length;
    }, 20_000, 500);
    assert.ok(done, `only ${got.size} of ${inside.length} instances have probe_success: ${promLog}`);
    const wrong = inside.filter(([t, v]) => got.get(t) !== v).map(([t, v]) => `${t}: ${got.get(t)} (want ${v})`);
    assert.deepEqual(wrong, []);
    for (const [t, v] of want) if (v === undefined) assert.equal(got.has(t), false, `${t} is outside allow: no probe_success`);
    const up = new Map<string, number>(query(serve, 'up{job="halfopen_static"}').map((r: any) => [r.metric.instance, Number(r.value[1])]));
    assert.equal(up.size, want.length);
    for (const [t, v] of want) assert.equal(up.get(t), v === undefined ? 0 : 1, `up of ${t}`);
    // Every scrape so far succeeded (up 1 at each one): the minimum over the window is 1.
    const minUp = query(serve, 'min_over_time(up{job="halfopen_static",instance="198.18.0.130:80"}[1m])');
    assert.equal(Number(minUp[0].value[1]), 1, 'a dropped target\'s scrapes all answered within the scrape timeout');
    const result = query(serve, 'probe_tcp_half_open_result{job="halfopen_static",instance=~"198.18.0.(21|130|150):.*"}');
    assert.deepEqual(result.map((r: any) => `${r.metric.instance} ${r.metric.state} ${r.metric.reason}`).sort(),
      ['198.18.0.130:80 filtered no-response', '198.18.0.150:80 unreachable icmp-3-1', '198.18.0.21:81 closed rst']);
    const proto = query(serve, 'probe_ip_protocol{instance="[2001:2::5]:80"}');
    assert.equal(Number(proto[0].value[1]), 6);
  });

  test('http_sd: /sd lists serve\'s backends, and the same job probes each of them', async () => {
    const want: Record<string, number> = { '198.18.0.40:80': 1, '198.18.0.41:81': 0, '198.18.0.140:80': 0, '198.18.0.157:80': 0, '[2001:2::6]:80': 1, 'web.test:80': 1 };
    let got = new Map<string, number>();
    const done = await waitFor(() => {
      got = new Map(query(serve, 'probe_success{job="halfopen_sd"}').map((r: any) => [r.metric.instance, Number(r.value[1])]));
      return got.size >= Object.keys(want).length;
    }, 20_000, 500);
    assert.ok(done, `only ${[...got.keys()]}`);
    assert.deepEqual(Object.fromEntries([...got].sort()), Object.fromEntries(Object.entries(want).sort()));
    const up = query(serve, 'up{job="halfopen_sd"}');
    assert.ok(up.length === 6 && up.every((r: any) => r.value[1] === '1'));
    const labelled = query(serve, 'probe_success{job="halfopen_sd",pool="web"}');
    assert.deepEqual(labelled.map((r: any) => r.metric.backend).sort(), ['web-closed', 'web-open'], 'backend labels reach the series');
  });

  test('a module with a source and a mark: the SYN leaves from it, the verdict comes back', () => {
    for (const t of ['198.18.0.3:80', '[2001:2::9]:80']) {
      const r = serve.get(HTTP, `/probe?module=marked&debug=true&target=${encodeURIComponent(t)}`);
      assert.equal(r.status, 200, r.body);
      assert.match(r.body, /^probe_success 1$/m, r.body);
      assert.match(r.body, t.startsWith('[') ? /srcIP=2001:2:0:ffff::1 mark=0x10/ : /srcIP=198\.19\.255\.1 mark=0x10/);
    }
  });

  test('the fleet saw no connection: 0 accepts, 0 SYN-RECV', () => {
    assert.deepEqual(fleet.acceptedConnections(), []);
    assert.equal(fleet.synRecvCount(), 0);
    assert.equal(serve.get(HTTP, '/healthz').status, 200);
  });
});

describe('/probe in an exporter-only serve: a real MariaDB, and reloads', { skip: skipDb }, () => {
  const DB = '198.18.0.200';
  let fleet: Fleet;
  let dir: string;
  let serve: ServeProcess;
  let db: ChildProcess | undefined;
  let dbOut = '';
  const sock = () => path.join(dir, 'mysqld.sock');
  const errLog = () => path.join(dir, 'error.log');
  /** Global status counters, read in one client connection (which itself adds one to Connections). */
  const counters = (): Record<string, number> => {
    const r = spawnSync('ip', ['netns', 'exec', fleet.fleet, 'mariadb', '--no-defaults', `--socket=${sock()}`, '-N', '-B', '-e',
      "SHOW GLOBAL STATUS WHERE Variable_name IN ('Aborted_connects', 'Connections')"], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return Object.fromEntries(r.stdout.trim().split('\n').map((l) => { const [k, v] = l.split('\t'); return [k, Number(v)]; }));
  };
  const status = (name: string): number => counters()[name];
  const abortedLines = () => (fs.existsSync(errLog()) ? fs.readFileSync(errLog(), 'utf8').split('\n').filter((l) => /Aborted connection/.test(l)).length : 0);

  before(async () => {
    fleet = await makeFleet('mdb');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-probe-mdb-'));
    const data = path.join(dir, 'data');
    const inst = spawnSync('ip', ['netns', 'exec', fleet.fleet, 'mariadb-install-db', '--no-defaults', `--datadir=${data}`, '--user=root',
      '--auth-root-authentication-method=normal', '--skip-test-db'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(inst.status, 0, `${inst.stdout}${inst.stderr}`);
    db = spawn('ip', ['netns', 'exec', fleet.fleet, 'mariadbd', '--no-defaults', `--datadir=${data}`, `--socket=${sock()}`, `--pid-file=${path.join(dir, 'mysqld.pid')}`,
      `--bind-address=${DB}`, '--port=3306', '--skip-grant-tables', '--skip-name-resolve', '--log-warnings=4', `--log-error=${errLog()}`, '--user=root',
      '--innodb-buffer-pool-size=16M', '--max-connections=500', '--skip-log-bin'], { stdio: ['ignore', 'pipe', 'pipe'] });
    db.stdout!.on('data', (d) => { dbOut += d; });
    db.stderr!.on('data', (d) => { dbOut += d; });
    const ready = await waitFor(() => fs.existsSync(sock()) || db!.exitCode !== null, 30_000, 100);
    assert.ok(ready && db.exitCode === null, `mariadbd did not start: ${dbOut}${fs.existsSync(errLog()) ? fs.readFileSync(errLog(), 'utf8') : ''}`);
    const file = path.join(dir, 'serve.yaml');
    fs.writeFileSync(file, `listen: { http: "127.0.0.1:${HTTP}" }
exporter:
  allow: [${DB}]
  max_concurrent: 50
  max_per_second: 1000
  modules: { mysql: { port: 3306, timeout: 2s } }
`);
    serve = new ServeProcess(fleet, file);
    await serve.ready();
  });

  after(async () => {
    await serve?.stop();
    await stopChild(db, 10_000);
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('100 probes through /probe leave Aborted_connects and the error log as they were; 100 full connects add 100 to both', async () => {
    const before = counters();
    const aborted0 = before.Aborted_connects;
    const lines0 = abortedLines();
    // 100 scrapes, ten at a time, as Prometheus would send them (an exporter-only serve: no backends).
    const out = await nsNode(fleet, 'prober', `(async () => {
      const res = [];
      for (let k = 0; k < 10; k++) res.push(...await Promise.all(Array.from({ length: 10 }, () =>
        fetch('http://127.0.0.1:${HTTP}/probe?module=mysql&target=${DB}', { headers: { 'X-Prometheus-Scrape-Timeout-Seconds': '2' } })
          .then(async (r) => r.status + ' ' + /^probe_success (\\d)$/m.exec(await r.text())?.[1]))));
      process.stdout.write(JSON.stringify(res));
    })()`);
    const answers = JSON.parse(out) as string[];
    assert.equal(answers.length, 100);
    assert.deepEqual([...new Set(answers)], ['200 1'], 'every probe answered, MariaDB open');
    await sleep(500);
    const afterProbes = counters();
    assert.equal(afterProbes.Aborted_connects, aborted0, 'half-open probes are not aborted connections');
    assert.equal(afterProbes.Connections, before.Connections + 1, 'MariaDB saw no connection but the status query\'s own');
    assert.equal(abortedLines(), lines0, 'and log nothing');
    // What blackbox's tcp_connect does: connect, then close without a word.
    await nsNode(fleet, 'prober', `(async () => {
      const net = require('net');
      for (let i = 0; i < 100; i++) await new Promise((resolve, reject) => {
        const s = net.connect(3306, '${DB}');
        // After MariaDB's greeting, as a connect does over any real network (closing before it
        // arrives counts as Aborted_connects_preauth instead).
        s.once('data', () => s.end());
        s.on('close', resolve); s.on('error', reject);
      });
    })()`);
    assert.ok(await waitFor(() => status('Aborted_connects') === aborted0 + 100, 10_000, 100), `Aborted_connects ${status('Aborted_connects')} (was ${aborted0})`);
    assert.ok(await waitFor(() => abortedLines() === lines0 + 100, 10_000, 100), `${abortedLines() - lines0} "Aborted connection" lines`);
    assert.equal(fleet.synRecvCount(), 0);
  });

  test('SIGHUP: a new allow list and limits take effect; without an exporter section /probe answers 404', async () => {
    const file = path.join(dir, 'serve.yaml');
    const probe = () => serve.get(HTTP, `/probe?module=mysql&target=${DB}`).status;
    assert.equal(probe(), 200);
    const reloads = () => (serve.stderr.match(/reloaded /g) ?? []).length;
    fs.writeFileSync(file, `listen: { http: "127.0.0.1:${HTTP}" }\nexporter:\n  allow: [198.18.0.1]\n  modules: { mysql: { port: 3306 } }\n`);
    serve.signal('SIGHUP');
    assert.ok(await waitFor(() => reloads() === 1, 10_000), serve.stderr);
    assert.equal(probe(), 403, 'no longer allowed');
    assert.equal(serve.get(HTTP, '/probe?target=198.18.0.1:80').status, 200);
    fs.writeFileSync(file, `listen: { http: "127.0.0.1:${HTTP}" }\nexporter:\n  allow: [198.18.0.1]\n  modules: { }\n  max_per_second: 1\n`);
    serve.signal('SIGHUP');
    assert.ok(await waitFor(() => reloads() === 2, 10_000), serve.stderr);
    assert.equal(probe(), 400, 'the module is gone');
    const statuses = [0, 1, 2].map(() => serve.get(HTTP, '/probe?target=198.18.0.1:80').status);
    assert.ok(statuses.includes(429), `max_per_second 1: ${statuses}`);
    fs.writeFileSync(file, `listen: { http: "127.0.0.1:${HTTP}" }\nbackends:\n  - { host: 198.18.0.1, port: 80 }\n`);
    serve.signal('SIGHUP');
    assert.ok(await waitFor(() => reloads() === 3, 10_000), serve.stderr);
    assert.equal(serve.get(HTTP, '/probe?target=198.18.0.1:80').status, 404);
  });
});

/** Cumulative counts of a histogram's buckets in a /metrics text. */
function buckets(text: string, name: string): number[] {
  return LATENESS_BUCKETS.map((le) => {
    const m = new RegExp(`^${name}_bucket\\{le="${le}"\\} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  }).concat(Number(new RegExp(`^${name}_count (\\d+)$`, 'm').exec(text)?.[1] ?? 0));
}

/** The upper bound of the bucket holding the 99th percentile between two scrapes (Infinity: beyond the last). */
function p99(a: number[], b: number[]): number {
  const d = b.map((x, i) => x - a[i]);
  const total = d[d.length - 1];
  for (let i = 0; i < LATENESS_BUCKETS.length; i++) if (d[i] >= 0.99 * total) return LATENESS_BUCKETS[i];
  return Infinity;
}

/** User + system CPU of a process, ms. */
const cpuMs = (pid: number) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
};

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

describe('/probe under load: 1,000 concurrent requests while serve checks 5,000 backends', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  let serve: ServeProcess;

  before(async () => {
    fleet = await makeFleet('load');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-probe-load-'));
    const file = path.join(dir, 'serve.yaml');
    const bs = Array.from({ length: 5000 }, (_, i) => `  - { host: 198.18.${16 + (i >> 8)}.${i & 255}, port: 80 }`);
    fs.writeFileSync(file, `defaults: { interval: 1s, timeout: 500ms }
listen: { http: "127.0.0.1:${HTTP}" }
exporter:
  allow: [198.18.0.0/24]
  max_concurrent: 200
  max_per_second: 500
backends:
${bs.join('\n')}
`);
    serve = new ServeProcess(fleet, file);
    await serve.ready(30_000);
  });

  after(async () => {
    await serve?.stop();
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('each answered correctly or refused 429/503 within its deadline; lateness p99 unchanged; nothing kept per request', async () => {
    const pid = serve.child.pid!;
    // Steady state first: every backend checked at least twice.
    assert.ok(await waitFor(() => /^halfopen_backends\{state="up"\} 5000$/m.test(serve.get(HTTP, '/metrics').body), 20_000, 500), serve.stderr);
    const m0 = serve.get(HTTP, '/metrics').body;
    await sleep(3000);
    const m1 = serve.get(HTTP, '/metrics').body;
    let mWarm = '';
    let tWarm = 0;
    const rss0 = rssMb(pid);
    const base = p99(buckets(m0, 'halfopen_check_lateness_seconds'), buckets(m1, 'halfopen_check_lateness_seconds'));
    const baseMetrics = m1;
    // 1,000 requests at once over three kinds of target; the scrape timeout (2 s) is each one's deadline.
    const kinds = ['198.18.0.1:80', '198.18.0.2:81', '198.18.0.131:80'];
    const wantSuccess = ['1', '0', '0'];
    let peak = rss0;
    const sampler = setInterval(() => { try { peak = Math.max(peak, rssMb(pid)); } catch { /* exited */ } }, 100);
    // Prometheus keeps its connections to an exporter open: so does this client. The sockets are
    // opened first (1,000 GET /healthz), then the 1,000 probes go out at once on them.
    const cpu0 = cpuMs(pid);
    const burst = (onWarm: () => void) => nsNode(fleet, 'prober', `(async () => {
      const http = require('http');
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1000, maxFreeSockets: 1000 });
      const kinds = ${JSON.stringify(kinds)};
      const get = (path, headers) => new Promise((resolve) => {
        const t0 = Date.now();
        const req = http.get({ host: '127.0.0.1', port: ${HTTP}, agent, path, headers }, (res) => {
          let b = ''; res.setEncoding('utf8'); res.on('data', (d) => b += d);
          res.on('end', () => resolve([res.statusCode, Date.now() - t0, b]));
        });
        req.setTimeout(10000, () => req.destroy(new Error('timeout')));
        req.on('error', (e) => resolve([0, Date.now() - t0, String(e.code || e.message)]));
      });
      await Promise.all(Array.from({ length: 1000 }, () => get('/healthz', {})));
      process.stderr.write('warm ' + Object.values(agent.freeSockets).flat().length + '\\n');
      process.stdout.write('start\\n');
      await new Promise((r) => setTimeout(r, 300));
      const res = await Promise.all(Array.from({ length: 1000 }, (_, i) =>
        get('/probe?target=' + kinds[i % 3], { 'X-Prometheus-Scrape-Timeout-Seconds': '2' })
          .then(([s, ms, b]) => [i % 3, s, ms, /^probe_success (\\d)$/m.exec(b)?.[1] ?? null, Number(/^probe_duration_seconds (\\S+)$/m.exec(b)?.[1] ?? 0)])));
      process.stdout.write(JSON.stringify(res));
      agent.destroy();
    })()`, 60_000, onWarm);
    const out = await burst(() => { tWarm = Date.now(); mWarm = serve.get(HTTP, '/metrics').body; });
    const cpuBurst = cpuMs(pid) - cpu0;
    const answers = JSON.parse(out.slice(out.indexOf('\n') + 1)) as Array<[number, number, number, string | null, number]>;
    await sleep(1500);
    const m2 = serve.get(HTTP, '/metrics').body;
    clearInterval(sampler);
    const L = 'halfopen_check_lateness_seconds';
    // The noise: the same number of plain HTTP requests (the warm-up's /healthz) in the same process.
    const http1000 = p99(buckets(m1, L), buckets(mWarm, L));
    const load = p99(buckets(mWarm, L), buckets(m2, L));
    const sent = (t: string) => Number(/^halfopen_checks_sent_total (\d+)$/m.exec(t)![1]);
    void baseMetrics;
    const by = (s: number) => answers.filter((a) => a[1] === s).length;
    const tally = { ok: by(200), busy: by(503), rate: by(429), other: answers.length - by(200) - by(503) - by(429) };
    const wrong = answers.filter(([k, s, , v]) => s === 200 && v !== wantSuccess[k]);
    // The deadline serve keeps: each probe ends by the scrape timeout minus the offset (1.5 s)...
    const overran = answers.filter(([, s, , , d]) => s === 200 && d > 1.5 + 0.05);
    // ... and the answer reaches the scraper soon after. End to end, the time also holds this
    // client's own wait for a core (1,000 sockets in one process on a shared 2-core machine):
    // bounded, and printed with the machine's load; that scrapes finish within the scrape
    // timeout is the Prometheus test's up == 1 at every scrape, dropped targets included.
    const late = answers.filter(([, , ms]) => ms > 5000);
    const slowest = Math.max(...answers.map((a) => a[2]));
    const spread = (s: number) => { const ms = answers.filter((a) => a[1] === s).map((a) => a[2]).sort((x, y) => x - y); return ms.length ? `${ms[0]}/${ms[ms.length >> 1]}/${ms[ms.length - 1]}` : '-'; };
    console.log(`load: ms min/median/max 200 ${spread(200)}, 503 ${spread(503)}, 429 ${spread(429)}; machine load ${os.loadavg()[0].toFixed(2)}`);
    const link = fleet.fleetLinkStats();
    const proberDrops = fleet.proberLinkStats().txDropped;
    console.log(`load: fleet veth tx_dropped ${link.txDropped}, prober veth tx_dropped ${proberDrops}; serve said: ${serve.stderr.split('\n').filter((l) => /warning|error/.test(l)).slice(0, 3).join(' | ')}`);
    console.log(`load: serve used ${cpuBurst} ms of CPU for the burst (${(cpuBurst / 1000).toFixed(3)} ms per request)`);
    console.log(`load: ${JSON.stringify(tally)}, slowest ${slowest} ms; lateness p99 ${base} s before, ${http1000} s during 1,000 GET /healthz, ${load} s during the 1,000 /probe; RSS ${rss0.toFixed(1)} MB, peak ${peak.toFixed(1)} MB`);
    assert.equal(answers.length, 1000);
    assert.equal(tally.other, 0, JSON.stringify(answers.filter((a) => ![200, 429, 503].includes(a[1])).slice(0, 5)));
    assert.ok(tally.ok >= 200, `at least max_concurrent answered: ${JSON.stringify(tally)}`);
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} wrong answers`);
    assert.deepEqual(overran.slice(0, 5), [], `${overran.length} probes ran past their 1.5 s deadline`);
    assert.deepEqual(late.slice(0, 5), [], `${late.length} answers more than 5 s after they were sent`);
    const idx = (x: number) => (x === Infinity ? LATENESS_BUCKETS.length : LATENESS_BUCKETS.indexOf(x));
    // The control's own p99 spreads from 0.025 to 0.1 s between runs on this 2-core machine (and
    // the probes' from 0.05 to 0.1 s), so a bucket above it alone fails on noise: within serve's
    // lateness target (100 ms, docs/performance.md) or within a bucket of the control is unchanged.
    assert.ok(load <= LATENESS_TARGET_S || idx(load) <= Math.max(idx(base), idx(http1000)) + 1,
      `lateness p99 ${load} s during the probes against ${base} s before and ${http1000} s during as many plain requests`);
    assert.ok(sent(m2) - sent(mWarm) >= 0.9 * 5000 * ((Date.now() - tWarm) / 1000 - 1), 'the checks kept going out');
    assert.equal(serve.get(HTTP, '/healthz').status, 200, 'the scheduler kept up');
    assert.match(m2, /^halfopen_backends\{state="up"\} 5000$/m, 'no backend went down');
    // Nothing kept per request. RSS after one burst is no measure of that: V8 grows its young
    // generation under such a load and keeps it (seen: +27 MB that stayed). A second burst must
    // fit in what the first left: a leak of 15 KB a request would show as 15 MB more.
    await sleep(1500);
    const rss1 = rssMb(pid);
    const again = await burst(() => undefined);
    assert.equal((JSON.parse(again.slice(again.indexOf('\n') + 1)) as unknown[]).length, 1000);
    const back = await waitFor(() => rssMb(pid) <= Math.max(rss1, peak) + 15, 15_000, 500);
    console.log(`load: RSS ${rss0.toFixed(1)} MB before, ${rss1.toFixed(1)} MB after one burst, ${rssMb(pid).toFixed(1)} MB after a second`);
    assert.ok(back, `RSS ${rssMb(pid).toFixed(1)} MB after a second burst, ${rss1.toFixed(1)} MB after the first (peak ${peak.toFixed(1)} MB, ${rss0.toFixed(1)} MB before)`);
    assert.deepEqual(fleet.acceptedConnections(), []);
  });
});
