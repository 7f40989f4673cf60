// Fleet scale: whether `halfopen serve` holds 100,000 backends at a 1 s
// interval and 1,000,000 at 10 s, on a fleet where 10 % of the backends never
// answer and 2 % flap (their drop rule toggled every 5 s).
//
// Every check is due exactly once per interval whatever the backend's state
// (fastinter = downinter = interval), so the checks due over a window are
// backends × seconds ÷ interval, and the fleet's firewall counts the SYNs
// that arrive before any drop: checks sent against checks due. Beside it:
// lateness from serve's own histogram (a scrape at each end of the window),
// RSS every second, serve's CPU per check against `halfopen sweep`'s CPU per
// probe on the same fleet, a window half without and half with full /metrics
// scrapes every 5 s (at 100,000); a SIGHUP that changes 1 % of the
// backends; at 100,000 also 10,000 backends against HAProxy's own checks.
// Every row carries its target and whether the figure meets it.
//
// The fleet-side veth runs its NAPI in a kernel thread throughout (see
// fleetNapiThread in bench/serve.ts): the fleet's work is charged to no tool.
// The bench talks to serve only through its config file, signals, stderr,
// HTTP and /proc.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Fleet } from '../src/fleet/fleet';
import {
  BenchContext, Measurement, MAIN, ScenarioResult, bucketDelta, bucketQuantile, bucketShare, buckets, cpuTicks, have, median, memory, metric, sleep,
  timed, waitFor, withFleet,
} from './lib';
import { Counters, Timing, backends, fleetNapiThread, installCounters, runHaproxy, sample, startServe, stopChild, ServeProcess } from './serve';
import { HALFOPEN_FLAGS, stopIfInterrupted } from './sweep';

const TIMEOUT_MS = 500, RISE = 2, FALL = 3;
const PORTS = Array.from({ length: 16 }, (_, i) => 80 + i);
const HTTP = '127.0.0.1:9420';
const SCRAPE_EVERY_MS = 5000;
const FLAP_EVERY_MS = 5000;
const LATENESS = 'halfopen_check_lateness_seconds';
/** Silent: every 10th address of the /16; flapping: every 50th, offset 5 (the two never meet). Every port of such an address. */
const isSilent = (a: number) => a % 10 === 0;
const isFlapping = (a: number) => a % 50 === 5;
const addr = (a: number) => `198.18.${a >> 8}.${a & 255}`;

interface Scale {
  id: 'serve-100k' | 'serve-1m';
  n: number;
  intervalMs: number;
  /** Before the window: every backend checked at least once. */
  warmS: number;
  /** The window: a first half with no full scrape (a light one, ?per_backend=false, at each end), a second with a full scrape every 5 s. */
  halfS: number;
  startCapMs: number;
  /** Whether the window's second half has a full scrape every 5 s (else the whole window has none, and one full scrape follows it). */
  scrapedHalf: boolean;
  /** Longest a single /metrics scrape may take before it counts as failed. */
  scrapeCapMs: number;
  rssTargetMb: number;
  reload: boolean;
  /** Backends for the serve vs HAProxy pair, 0 for none. */
  haproxyN: number;
  haproxyS: number;
}

const scaleOf = (ctx: BenchContext, id: Scale['id']): Scale => (id === 'serve-100k'
  ? { id, n: ctx.quick ? 20_000 : 100_000, intervalMs: 1000, warmS: 5, halfS: ctx.quick ? 10 : 30, startCapMs: 180_000, scrapedHalf: true, scrapeCapMs: 120_000, rssTargetMb: 150, reload: true, haproxyN: 10_000, haproxyS: ctx.quick ? 10 : 30 }
  : { id, n: ctx.quick ? 100_000 : 1_000_000, intervalMs: 10_000, warmS: 20, halfS: ctx.quick ? 20 : 60, startCapMs: 180_000, scrapedHalf: false, scrapeCapMs: 300_000, rssTargetMb: 1024, reload: true, haproxyN: 0, haproxyS: 0 });

// ── the fleet's silent and flapping backends

/**
 * One nft table in the fleet: @silent dropped throughout, @flapping dropped
 * while the `flap` chain holds its rule. Priority -30: after the SYN counter
 * (-50, installCounters), so a SYN to a silent backend counts as sent.
 */
function installSilence(fleet: Fleet): { toggle: () => void; off: () => void; remove: () => void } {
  const silent: string[] = [], flapping: string[] = [];
  for (let a = 0; a < 65536; a++) { if (isSilent(a)) silent.push(addr(a)); else if (isFlapping(a)) flapping.push(addr(a)); }
  const nft = (input: string) => execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', '-f', '-'], { input });
  nft(`table inet bench_scale {\n set silent { type ipv4_addr; elements = { ${silent.join(', ')} } }\n set flapping { type ipv4_addr; elements = { ${flapping.join(', ')} } }\n` +
    ' chain flap {\n }\n chain input {\n  type filter hook input priority -30;\n  meta l4proto tcp ip daddr @silent drop\n  meta l4proto tcp jump flap\n }\n}\n');
  let dropping = false;
  const set = (on: boolean) => {
    if (on === dropping) return;
    dropping = on;
    nft(on ? 'add rule inet bench_scale flap ip daddr @flapping drop\n' : 'flush chain inet bench_scale flap\n');
  };
  return {
    toggle: () => set(!dropping),
    off: () => set(false),
    remove: () => { try { nft('delete table inet bench_scale\n'); } catch { /* gone with the namespace */ } },
  };
}

// ── /metrics from a scraper that lives in the prober namespace

interface Scrape {
  /** Wall clock when the scrape started, and how long reading the whole body took. */
  at: number;
  ms: number;
  bytes: number;
  /** The exposition from the first aggregate series on (the per-backend series skipped): histograms, counters, gauges; '' when the scrape failed. */
  tail: string;
  error?: string;
}

/**
 * A Node process in the prober namespace that, per line on its stdin, GETs
 * /metrics, reads the whole body and answers with a JSON line: its size, the
 * time it took, and the text from `# HELP halfopen_probe_duration_seconds`
 * on (a 1,000,000-backend exposition is larger than a JavaScript string may be).
 * A light scrape (`?per_backend=false`) reads the same aggregate series
 * without rendering the per-backend ones: the window's own readings, which
 * must not add the stall of a full scrape to the figures they bound.
 */
function startScraper(fleet: Fleet, capMs: number): { scrape: (light?: boolean) => Promise<Scrape>; stop: () => void } {
  const script = `const MARK = Buffer.from('# HELP halfopen_probe_duration_seconds');
const rl = require('readline').createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const at = Date.now();
  try {
    const r = await fetch('http://${HTTP}/metrics' + (line === 'light' ? '?per_backend=false' : ''), { signal: AbortSignal.timeout(${capMs}) });
    let bytes = 0, prev = Buffer.alloc(0), tail = null;
    for await (const chunk of r.body) {
      const b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      bytes += b.length;
      if (tail) { tail.push(Buffer.from(b)); continue; }
      const both = Buffer.concat([prev, b]), i = both.indexOf(MARK);
      if (i >= 0) tail = [both.subarray(i)]; else prev = both.subarray(Math.max(0, both.length - MARK.length));
    }
    process.stdout.write(JSON.stringify({ at, ms: Date.now() - at, bytes, tail: tail ? Buffer.concat(tail).toString() : '' }) + '\\n');
  } catch (e) { process.stdout.write(JSON.stringify({ at, ms: Date.now() - at, bytes: 0, tail: '', error: String(e) }) + '\\n'); }
});
rl.on('close', () => process.exit(0));`;
  const child = spawn('ip', ['netns', 'exec', fleet.prober, process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'ignore'] });
  const waiting: Array<(s: Scrape) => void> = [];
  let buf = '';
  child.stdout!.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) { const line = buf.slice(0, nl); buf = buf.slice(nl + 1); waiting.shift()?.(JSON.parse(line)); }
  });
  return {
    // A failed scrape is a figure, not the end of the run: its tail is '' and what it would have given is NaN.
    scrape: async (light = false) => {
      const at = Date.now();
      const answer = new Promise<Scrape>((resolve) => waiting.push(resolve));
      child.stdin!.write(light ? 'light\n' : 'scrape\n');
      const s = await Promise.race([answer, sleep(capMs + 5000).then(() => null)]);
      if (!s) return { at, ms: Date.now() - at, bytes: 0, tail: '', error: 'no answer from the scraper' };
      if (!s.error && !s.tail) s.error = 'no aggregate series in the body';
      return s;
    },
    stop: () => { child.stdin!.end(); if (child.exitCode === null) child.kill('SIGKILL'); },
  };
}

// ── serve's config and process

/** A serve config in JSON syntax (YAML's superset): every check due once per interval whatever the state. */
function writeConfig(file: string, n: number, intervalMs: number, portOf: (i: number, port: number) => number = (_, p) => p): void {
  const bs = backends(n);
  const parts: string[] = [];
  for (let i = 0; i < bs.length; i++) parts.push(`{"name":"${bs[i].name}","host":"${bs[i].ip}","port":${portOf(i, bs[i].port)}}`);
  const defaults = { interval: `${intervalMs}ms`, fastinter: `${intervalMs}ms`, downinter: `${intervalMs}ms`, timeout: `${TIMEOUT_MS}ms`, rise: RISE, fall: FALL };
  // Written beside and renamed: a SIGHUP never reads a half-written file.
  fs.writeFileSync(`${file}.new`, `{"defaults":${JSON.stringify(defaults)},"listen":{"http":"${HTTP}"},"backends":[\n${parts.join(',\n')}\n]}\n`);
  fs.renameSync(`${file}.new`, file);
}

/** RSS of pid once a second until stopped (bounded by maxS); points relative to t0. */
function rssSampler(pid: number, t0: number, maxS: number): { points: Array<[number, number]>; stop: () => void } {
  const points: Array<[number, number]> = [];
  let n = 0;
  const timer = setInterval(() => {
    if (++n > maxS) return clearInterval(timer);
    try { points.push([(Date.now() - t0) / 1000, memory(pid).rssMb]); } catch { clearInterval(timer); }
  }, 1000);
  return { points, stop: () => clearInterval(timer) };
}

const uptime = () => execFileSync('uptime', { encoding: 'utf8' }).trim().replace(/^.*load average/, 'load average');

type Verdict = { op: '≥' | '≤'; bound: number; unit: string };
const verdict = (x: number, v: Verdict): string =>
  `${v.op} ${v.bound.toLocaleString('en-US')}${v.unit}: ${!Number.isFinite(x) ? 'not measured' : (v.op === '≥' ? x >= v.bound : x <= v.bound) ? 'meets' : 'misses'}`;

// ── one scale

function scrapeFigures(scrapes: Scrape[]): { scrapeMb: number; scrapeMsMedian: number; scrapeMsMax: number; scrapes: number; scrapesFailed: number } {
  const ok = scrapes.filter((s) => !s.error);
  return {
    scrapeMb: median(ok.map((s) => s.bytes)) / 2 ** 20, scrapeMsMedian: median(ok.map((s) => s.ms)),
    scrapeMsMax: Math.max(...scrapes.map((s) => s.ms)), scrapes: scrapes.length, scrapesFailed: scrapes.length - ok.length,
  };
}

interface Figures {
  startS: number; startRssMb: number;
  due: number; sent: number; sentPct: number; ownSent: number;
  /** Frames the prober-side veth dropped over the window (its ring to the fleet full): lost on the lab's link, after serve sent them. */
  linkDropped: number;
  /** SYN+ACKs the backends sent over the window, and the RSTs that reached them: a lost RST is one of the link's drops. */
  synAcks: number; rstsLost: number;
  p99Ms: number; within100Pct: number; quietP99Ms: number; scrapedP99Ms: number;
  rssSteadyMb: number; rssWindowMaxMb: number; rssPeakMb: number;
  cpuPct: number; usPerCheck: number; quietUsPerCheck: number;
  scrapeMb: number; scrapeMsMedian: number; scrapeMsMax: number; scrapes: number; scrapesFailed: number;
  upAtEnd: number; downAtEnd: number;
  reloadMs?: number; lagAfterReloadMs?: number; worstAroundReloadMs?: number; reloadChanged?: number; reloadPeakMb?: number;
}

async function runServe(ctx: BenchContext, fleet: Fleet, count: () => Counters, silence: { toggle: () => void; off: () => void }, sc: Scale): Promise<{ f: Figures; series: NonNullable<ScenarioResult['series']> }> {
  const cfg = path.join(ctx.tmp, `${sc.id}.json`);
  writeConfig(cfg, sc.n, sc.intervalMs);
  const cfgMb = fs.statSync(cfg).size / 2 ** 20;
  ctx.log(`${sc.n.toLocaleString('en-US')} backends at ${sc.intervalMs / 1000} s (config ${cfgMb.toFixed(1)} MB); starting serve (at most ${sc.startCapMs / 1000} s)`);
  const t0 = Date.now();
  const serve: ServeProcess = await startServe(fleet, cfg, sc.startCapMs);
  const pid = serve.pid;
  const startRssMb = memory(pid).hwmMb;
  ctx.log(`serve started in ${(serve.startMs / 1000).toFixed(1)} s, peak RSS so far ${startRssMb.toFixed(0)} MB`);
  const totalS = sc.warmS + 2 * sc.halfS + 60 + (3 * sc.scrapeCapMs) / 1000;
  const rss = rssSampler(pid, t0, sc.startCapMs / 1000 + totalS);
  let flaps = 0;
  const flapper = setInterval(() => { if (++flaps > 2 * totalS) clearInterval(flapper); else silence.toggle(); }, FLAP_EVERY_MS);
  const scraper = startScraper(fleet, sc.scrapeCapMs);
  const lag: Array<[number, number]> = [], p99: Array<[number, number]> = [];
  const rel = (t: number) => (t - t0) / 1000;
  try {
    await sleep(sc.warmS * 1000);
    // A light scrape at each end of the quiet half, then (scrapedHalf) a full one every 5 s to the end of the window.
    const point = (s: Scrape, prev: Scrape | null) => {
      ctx.log(`/metrics: ${(s.bytes / 2 ** 20).toFixed(1)} MB in ${(s.ms / 1000).toFixed(1)} s${s.error ? `, failed: ${s.error}` : ''}`);
      lag.push([rel(s.at + s.ms), metric(s.tail, 'halfopen_schedule_lag_seconds') * 1000]);
      if (prev) p99.push([rel(s.at + s.ms), bucketQuantile(bucketDelta(buckets(prev.tail, LATENESS), buckets(s.tail, LATENESS)), 0.99) * 1000]);
    };
    const m0 = await scraper.scrape(true);
    point(m0, null);
    const k0 = count(), c0 = k0.syns, cpu0 = cpuTicks(pid), tw0 = Date.now(), d0 = fleet.proberLinkStats().txDropped;
    await sleep((sc.scrapedHalf ? 1 : 2) * sc.halfS * 1000);
    // The counters and CPU of the quiet part are read before its closing scrape: that scrape's rendering is not a check's cost.
    const ch = count().syns, cpuh = cpuTicks(pid), twh = Date.now();
    const mh = await scraper.scrape(true);
    point(mh, m0);
    const scrapes: Scrape[] = [];
    let prev = mh;
    for (let k = 1; sc.scrapedHalf && k <= Math.ceil((sc.halfS * 1000) / SCRAPE_EVERY_MS); k++) {
      await sleep(Math.max(0, mh.at + k * SCRAPE_EVERY_MS - Date.now()));
      const s = await scraper.scrape();
      scrapes.push(s); point(s, prev); prev = s;
    }
    const m1 = prev;
    const [c1, cpu1, tw1] = sc.scrapedHalf ? [count().syns, cpuTicks(pid), Date.now()] : [ch, cpuh, twh];
    const d1 = fleet.proberLinkStats().txDropped, k1 = count();
    const seconds = (tw1 - tw0) / 1000;
    const whole = bucketDelta(buckets(m0.tail, LATENESS), buckets(m1.tail, LATENESS));
    const due = (sc.n * (tw1 - tw0)) / sc.intervalMs, sent = c1 - c0;
    const inWindow = rss.points.filter(([t]) => t >= rel(tw0) && t <= rel(tw1)).map(([, v]) => v);
    const f: Figures = {
      startS: serve.startMs / 1000, startRssMb,
      due, sent, sentPct: (100 * sent) / due,
      ownSent: metric(m1.tail, 'halfopen_checks_sent_total') - metric(m0.tail, 'halfopen_checks_sent_total'),
      linkDropped: d1 - d0, synAcks: k1.synAcks - k0.synAcks, rstsLost: (k1.synAcks - k0.synAcks) - (k1.rsts - k0.rsts),
      p99Ms: bucketQuantile(whole, 0.99) * 1000, within100Pct: 100 * bucketShare(whole, 0.1),
      quietP99Ms: bucketQuantile(bucketDelta(buckets(m0.tail, LATENESS), buckets(mh.tail, LATENESS)), 0.99) * 1000,
      scrapedP99Ms: !sc.scrapedHalf ? NaN : bucketQuantile(bucketDelta(buckets(mh.tail, LATENESS), buckets(m1.tail, LATENESS)), 0.99) * 1000,
      rssSteadyMb: median(inWindow), rssWindowMaxMb: Math.max(...inWindow), rssPeakMb: NaN,
      cpuPct: (cpu1 - cpu0) / seconds, usPerCheck: ((cpu1 - cpu0) / 100 / sent) * 1e6,
      quietUsPerCheck: ((cpuh - cpu0) / 100 / (ch - c0)) * 1e6,
      // Without the scraped half, one full scrape after the window (below).
      ...scrapeFigures(scrapes),
      upAtEnd: metric(m1.tail, 'halfopen_backends\\{state="up"\\}'), downAtEnd: metric(m1.tail, 'halfopen_backends\\{state="down"\\}'),
    };
    ctx.log(`window ${seconds.toFixed(0)} s: sent ${sent} of ${Math.round(due)} due (${f.sentPct.toFixed(2)} %), lateness p99 ${f.p99Ms.toFixed(0)} ms (quiet ${f.quietP99Ms.toFixed(0)}, scraped ${f.scrapedP99Ms.toFixed(0)}), CPU ${f.cpuPct.toFixed(1)} %, ${f.usPerCheck.toFixed(2)} µs/check, RSS ${f.rssSteadyMb.toFixed(0)} MB, /metrics ${f.scrapeMb.toFixed(1)} MB in ${f.scrapeMsMedian} ms`);
    if (!sc.scrapedHalf) Object.assign(f, scrapeFigures([await scraper.scrape()]));
    if (sc.reload) Object.assign(f, await reload(ctx, serve, scraper, cfg, sc, point));
    // The largest of the start-up's, the window's and (VmHWM was reset at the SIGHUP) the rest of the run's.
    f.rssPeakMb = Math.max(f.startRssMb, f.rssWindowMaxMb, memory(pid).hwmMb);
    return {
      f,
      series: [
        { title: `${sc.id}: lateness p99 between scrapes (ms) over time since serve was started (s)`, unit: 'ms', points: p99 },
        { title: `${sc.id}: schedule lag at each scrape (ms) over time (s)`, unit: 'ms', points: lag },
        { title: `${sc.id}: serve RSS (MB) over time (s)`, unit: 'MB', points: rss.points },
      ],
    };
  } finally {
    clearInterval(flapper);
    silence.off();
    rss.stop();
    scraper.stop();
    await stopChild(serve.child);
  }
}

/**
 * SIGHUP with 1 % of the backends moved to a port no other backend uses
 * (at 100,000: 80 → 82, 81 → 83, open; at 1,000,000, whose backends use all
 * 16 open ports: 16 up, closed): the time until serve logs the reload done,
 * schedule lag 2.5 s after, and the worst lateness bucket over the 10 s
 * around the signal.
 */
async function reload(ctx: BenchContext, serve: ServeProcess, scraper: { scrape: (light?: boolean) => Promise<Scrape> }, cfg: string, sc: Scale, point: (s: Scrape, prev: Scrape | null) => void): Promise<Partial<Figures>> {
  const moved = (i: number) => i % 100 === 50;
  const shift = sc.n <= 2 * 65536 ? 2 : PORTS.length;
  writeConfig(cfg, sc.n, sc.intervalMs, (i, p) => (moved(i) ? p + shift : p));
  const before = await scraper.scrape(true);
  await sleep(Math.max(0, before.at + 5000 - Date.now()));
  // Peak RSS from here on: the reload's own (the start-up's is read at the start).
  fs.writeFileSync(`/proc/${serve.pid}/clear_refs`, '5');
  const tHup = Date.now();
  process.kill(serve.pid, 'SIGHUP');
  const done = () => serve.lines.find((l) => l.at >= tHup && /: (reloaded \S+: \d+ backends|reload rejected)/.test(l.line));
  if (!(await waitFor(() => !!done(), 60_000, 10))) throw new Error(`serve did not finish the reload within 60 s: ${serve.stderr().slice(-500)}`);
  const line = done()!;
  if (/rejected/.test(line.line)) throw new Error(`serve rejected the reload: ${line.line}`);
  await sleep(Math.max(0, line.at + 2500 - Date.now()));
  const afterLag = await scraper.scrape(true);
  point(afterLag, before);
  const lagMs = metric(afterLag.tail, 'halfopen_schedule_lag_seconds') * 1000;
  await sleep(Math.max(0, tHup + 5000 - Date.now()));
  const after = afterLag.at >= tHup + 5000 ? afterLag : await scraper.scrape(true);
  if (after !== afterLag) point(after, afterLag);
  // The worst bucket: the lowest bound that holds every check of the 10 s.
  const d = bucketDelta(buckets(before.tail, LATENESS), buckets(after.tail, LATENESS));
  const total = d[d.length - 1]?.[1] ?? 0;
  const worst = d.find(([, c]) => c >= total)?.[0] ?? NaN;
  ctx.log(`SIGHUP (${Array.from({ length: sc.n }, (_, i) => i).filter(moved).length} backends moved): reload ${line.at - tHup} ms, lag 2.5 s after ${lagMs.toFixed(0)} ms, worst lateness bucket ≤ ${worst * 1000} ms`);
  return { reloadMs: line.at - tHup, lagAfterReloadMs: lagMs, worstAroundReloadMs: worst * 1000, reloadChanged: Math.ceil((sc.n - 50) / 100), reloadPeakMb: memory(serve.pid).hwmMb };
}

/** 10,000 backends at 1 s, serve and then HAProxy, same timing (fastinter = inter), same fleet: CPU % of a core each. */
async function versusHaproxy(ctx: BenchContext, fleet: Fleet, count: () => Counters, sc: Scale): Promise<{ serve: Measurement; haproxy: Measurement | null }> {
  const cfg = path.join(ctx.tmp, `${sc.id}-pair.json`);
  writeConfig(cfg, sc.haproxyN, 1000);
  ctx.log(`serve vs HAProxy: ${sc.haproxyN} backends at 1 s, ${sc.haproxyS} s each`);
  const serve = await startServe(fleet, cfg);
  let s: Measurement;
  try {
    await sleep(3000);
    const r = await sample(serve.pid, sc.haproxyS, () => count().syns);
    s = { cpuPct: r.cpuPct, checksPerSec: r.perSec, rssMb: r.rssMb };
  } finally {
    await stopChild(serve.child);
  }
  const t: Timing = { inter: 1000, fastinter: 1000 };
  const h = have('haproxy') ? await runHaproxy(ctx, fleet, count, sc.haproxyN, sc.haproxyS, null, t) : null;
  ctx.log(`serve ${s.cpuPct.toFixed(1)} % (${Math.round(s.checksPerSec)} checks/s), HAProxy ${h ? `${h.cpuPct.toFixed(1)} % (${Math.round(h.checksPerSec)} checks/s)` : 'not installed'}`);
  return { serve: s, haproxy: h };
}

/** `halfopen sweep` over 1,048,576 probes (the /16 × ports 80–95) on the same fleet: whole-process CPU per SYN the fleet counted. */
function sweepCost(ctx: BenchContext, fleet: Fleet, count: () => Counters): { usPerSyn: number; syns: number; cpu: number; wall: number } {
  const out = path.join(ctx.tmp, 'scale-sweep.ndjson');
  const c0 = count().syns;
  const t = timed(fleet, [process.execPath, MAIN, 'sweep', '198.18.0.0/16', '-p', '80-95', ...HALFOPEN_FLAGS, '--format', 'ndjson', '--no-progress'], out, ctx.tmp, 120_000);
  stopIfInterrupted('halfopen sweep', t.exit);
  const syns = count().syns - c0;
  fs.rmSync(out, { force: true });
  if (t.exit !== 0) throw new Error(`halfopen sweep exited ${t.exit}`);
  ctx.log(`sweep: ${syns} SYNs, CPU ${t.cpu.toFixed(2)} s, ${((t.cpu / syns) * 1e6).toFixed(2)} µs per SYN, ${t.wall.toFixed(1)} s`);
  return { usPerSyn: (t.cpu / syns) * 1e6, syns, cpu: t.cpu, wall: t.wall };
}

// ── the scenario

async function scaleScenario(ctx: BenchContext, id: Scale['id']): Promise<ScenarioResult> {
  const sc = scaleOf(ctx, id);
  const load0 = uptime();
  const rows: ScenarioResult['rows'] = [];
  let loadEnd = '';
  let series: ScenarioResult['series'] = [];
  const k = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`);
  const at = `${k(sc.n)} @ ${sc.intervalMs / 1000} s`;
  await withFleet({ tag: 'scale', v4: '198.18.0.0/16', open: PORTS }, async (fleet) => {
    const count = installCounters(fleet, PORTS);
    const silence = installSilence(fleet);
    fleetNapiThread(fleet, true);
    try {
      const { f, series: s } = await runServe(ctx, fleet, count, silence, sc);
      series = s;
      const pair = sc.haproxyN ? await versusHaproxy(ctx, fleet, count, sc) : null;
      const sw = sweepCost(ctx, fleet, count);
      loadEnd = uptime();
      const row = (tool: string, settings: string, value: number, v: Verdict | null, extra: Measurement = {}) =>
        rows.push({ tool, settings, runs: [{ value, ...extra }], ...(v ? { target: verdict(value, v) } : {}) });
      const win = `${at}, ${2 * sc.halfS} s window`;
      row('serve start-up, s', `${at}: spawn → "checking N backends"`, f.startS, null);
      row('peak RSS at start-up, MB', at, f.startRssMb, null);
      row('checks sent ÷ due, %', `${win}: ${f.sent.toLocaleString('en-US')} of ${Math.round(f.due).toLocaleString('en-US')} (serve's own count between the scrapes: ${f.ownSent.toLocaleString('en-US')}; frames dropped by the prober veth: ${f.linkDropped.toLocaleString('en-US')}, of them RSTs: ${f.rstsLost.toLocaleString('en-US')} of ${f.synAcks.toLocaleString('en-US')} SYN+ACKs got none)`, f.sentPct, { op: '≥', bound: 99.9, unit: ' %' }, { sent: f.sent, due: f.due, ownSent: f.ownSent, linkDropped: f.linkDropped, synAcks: f.synAcks, rstsLost: f.rstsLost });
      row('lateness p99, ms', `${win}, whole window`, f.p99Ms, { op: '≤', bound: 100, unit: ' ms' });
      row('checks ≤ 100 ms late, %', `${win}, whole window`, f.within100Pct, { op: '≥', bound: 99, unit: ' %' });
      row('RSS steady, MB', `${win}: median of 1 s samples`, f.rssSteadyMb, { op: '≤', bound: sc.rssTargetMb, unit: ' MB' });
      row('RSS largest in the window, MB', `${win}${sc.scrapedHalf ? ', its scraped half included' : ''}: largest 1 s sample`, f.rssWindowMaxMb, { op: '≤', bound: sc.rssTargetMb, unit: ' MB' });
      row('RSS peak, MB', `${at}: the largest of start-up, window${sc.reload ? ' and reload' : ''} (VmHWM)`, f.rssPeakMb, { op: '≤', bound: sc.rssTargetMb, unit: ' MB' });
      row('serve CPU, % of a core', win, f.cpuPct, null);
      row('serve CPU per check, µs', `${win}: CPU s ÷ SYNs counted`, f.usPerCheck, null);
      if (sc.scrapedHalf) row('serve CPU per check, quiet half, µs', `${at}, ${sc.halfS} s without scrapes`, f.quietUsPerCheck, null);
      row('sweep CPU per probe, µs', `1,048,576 probes, ${HALFOPEN_FLAGS.join(' ')}: ${sw.cpu.toFixed(2)} CPU s ÷ ${sw.syns.toLocaleString('en-US')} SYNs`, sw.usPerSyn, null);
      row('serve µs/check ÷ sweep µs/probe', 'whole window', f.usPerCheck / sw.usPerSyn, { op: '≤', bound: 1.5, unit: '' });
      const scrapeText = `${f.scrapes} scrapes${f.scrapesFailed ? ` (${f.scrapesFailed} failed, capped at ${sc.scrapeCapMs / 1000} s)` : ''} of ${f.scrapeMb.toFixed(1)} MB, ${f.scrapeMsMedian} ms median, ${f.scrapeMsMax} ms max`;
      if (!sc.scrapedHalf) row('/metrics full scrape after the window, s', `${at}: ${scrapeText}`, f.scrapeMsMax / 1000, null, { scrapeMb: f.scrapeMb, scrapesFailed: f.scrapesFailed });
      if (sc.scrapedHalf) row('lateness p99 without scrapes, ms', `${at}, first ${sc.halfS} s`, f.quietP99Ms, { op: '≤', bound: 100, unit: ' ms' });
      if (sc.scrapedHalf) row('lateness p99 with /metrics every 5 s, ms', `${at}, last ${sc.halfS} s, ${scrapeText}`, f.scrapedP99Ms,
        { op: '≤', bound: Math.round(f.quietP99Ms + 10), unit: ' ms (the quiet half + 10 ms)' }, { scrapeMb: f.scrapeMb, scrapeMsMedian: f.scrapeMsMedian, scrapeMsMax: f.scrapeMsMax });
      if (f.reloadMs !== undefined) {
        const hup = `${at}, SIGHUP moving ${f.reloadChanged} backends (1 %) to another port`;
        // The target is the schedule's lag at the reload; reading the file takes place off the main thread and holds no check.
        row('reload: SIGHUP → "reloaded", ms', hup, f.reloadMs, null);
        row('reload: RSS peak, MB', `${hup}: VmHWM from the SIGHUP to 5 s after`, f.reloadPeakMb!, { op: '≤', bound: sc.rssTargetMb, unit: ' MB' });
        row('reload: schedule lag 2.5 s after, ms', hup, f.lagAfterReloadMs!, { op: '≤', bound: 200, unit: ' ms' });
        row('reload: worst lateness bucket, 10 s around it, ms', hup, f.worstAroundReloadMs!, { op: '≤', bound: 200, unit: ' ms' });
      }
      if (pair) {
        const ps = `${pair.serve.checksPerSec.toFixed(0)} checks/s counted`;
        row(`serve CPU, ${k(sc.haproxyN)} @ 1 s, % of a core`, ps, pair.serve.cpuPct, null);
        if (pair.haproxy) {
          row(`HAProxy 2.6 checks CPU, ${k(sc.haproxyN)} @ 1 s, % of a core`, `${pair.haproxy.checksPerSec.toFixed(0)} checks/s counted`, pair.haproxy.cpuPct, null);
          row('serve CPU ÷ HAProxy CPU', `${k(sc.haproxyN)} @ 1 s, fastinter = inter`, pair.serve.cpuPct / pair.haproxy.cpuPct, { op: '≤', bound: 0.2, unit: '' });
        }
      }
    } finally {
      silence.remove();
    }
  });
  return {
    id,
    title: `serve at fleet scale: ${sc.n.toLocaleString('en-US')} backends at a ${sc.intervalMs / 1000} s interval, 10 % silent, 2 % flapping`,
    notes: [
      `Load (uptime) at the start: ${load0}; at the end: ${loadEnd}. The machine is shared: figures move with it.`,
      `${sc.n.toLocaleString('en-US')} backends: address i mod 65,536 of 198.18.0.0/16, port 80 + i div 65,536 (all open). Config in JSON syntax: interval = fastinter = downinter = ${sc.intervalMs / 1000} s, timeout ${TIMEOUT_MS} ms, rise ${RISE}, fall ${FALL}, default jitter: every backend is due once per interval whatever its state.`,
      'Silent: every 10th address of the /16 (every port), dropped by nftables in the fleet throughout; flapping: every 50th (offset 5), its drop rule toggled every 5 s. SYNs are counted in the fleet\'s nftables at priority -50, before either drop: "sent" includes checks of silent backends. Due = backends × window ÷ interval.',
      (sc.scrapedHalf
        ? `The window: ${sc.halfS} s with a light scrape (/metrics?per_backend=false, the aggregate series only) at each end, then ${sc.halfS} s with a full /metrics scrape every 5 s (the whole body read by a client in the prober namespace). The SIGHUP\'s readings are light scrapes too.`
        : `The window: ${2 * sc.halfS} s with a light scrape (/metrics?per_backend=false) at each end only, then one full /metrics scrape after it (the whole body read by a client in the prober namespace; a scrape over ${sc.scrapeCapMs / 1000} s counts as failed). No full scrapes in the window: the full exposition at this size takes longer than 5 s.`) +
        ' Lateness: serve\'s halfopen_check_lateness_seconds, cumulative bucket deltas between scrapes, p99 interpolated inside its bucket.',
      `CPU: user + sys of serve's Node process (/proc/PID/stat) over the window. Sweep: \`halfopen sweep 198.18.0.0/16 -p 80-95 ${HALFOPEN_FLAGS.join(' ')}\` on the same fleet after serve stopped (same silent set), whole-process user + sys ÷ SYNs the fleet counted (retries of silent probes included).`,
      'Every row runs with the fleet-side veth\'s NAPI in its own kernel thread (XDP_PASS program on the fleet veth, threaded = 1), so the fleet\'s work is charged to no tool.',
      ...(sc.haproxyN ? [`serve vs HAProxy: ${sc.haproxyN.toLocaleString('en-US')} backends at 1 s (fastinter = inter), one after the other on the same fleet, ${sc.haproxyS} s each after a warm-up; the same silent addresses (flapping rule off).`] : []),
    ],
    columns: [{ key: 'value', label: 'figure', digits: 2 }],
    baseline: 'halfopen',
    rows,
    series,
  };
}

export const serveScale100k = (ctx: BenchContext): Promise<ScenarioResult> => scaleScenario(ctx, 'serve-100k');
export const serveScale1m = (ctx: BenchContext): Promise<ScenarioResult> => scaleScenario(ctx, 'serve-1m');
