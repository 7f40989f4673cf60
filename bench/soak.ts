// Soak: `halfopen serve` for minutes on a fleet that behaves like a real one.
// 10,000 backends at a 1 s interval, a tenth of them silent, 5 % flapping
// (silent for 5–20 s, then answering again, at random), a SIGHUP every 30 s
// that removes 1 % of the backends and adds as many new ones, /metrics scraped
// every 5 s and the status page's /status polled every second.
//
// Reported: CPU, RSS over time (growth after warm-up), how late checks left
// (p50/p99/max from halfopen_check_lateness_seconds), how long each flap took
// to be reported (from the moment the firewall changed to the daemon's event),
// and checks lost: sent − completed − dropped by reloads − in flight, which
// must be 0, and, counted outside halfopen, the SYNs the fleet's firewall saw
// reach a set of witness backends against the checks due to them. HALFOPEN_SOAK_SECONDS sets the duration (default 180 s, quick 60 s).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BenchContext, ScenarioResult, spawnServe, cpuTicks, memory, sleep, waitFor, withFleet, percentile, median, nsFetch, metric, buckets } from './lib';

const N = 10_000;
const SILENT = 1024; // 198.18.0.0/22: the first 1,024 backends
const FLAPPING = 500;
const HTTP = 9410;
/**
 * Witnesses: the answering, never-flapping backends in 198.18.20.0/22, which
 * no reload retires. Each is due one check a second (the interval, jittered
 * evenly around it), so over the run the fleet's firewall must count about
 * witnesses × seconds SYNs to them; fewer is checks lost, counted outside
 * halfopen.
 */
const WITNESS_FIRST = 20 * 256, WITNESS_END = 24 * 256;
const addr = (i: number) => `198.18.${i >> 8}.${i & 255}`;

/** The q-quantile's upper bucket bound from cumulative bucket deltas. */
function quantile(delta: Array<[number, number]>, q: number): number {
  const total = delta[delta.length - 1]?.[1] ?? 0;
  if (!total) return NaN;
  for (const [le, c] of delta) if (c >= q * total) return le;
  return Infinity;
}


export interface SoakSeries { t: number; rssMb: number; lagMs: number; cpuPct: number }

export async function soakScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const seconds = Number(process.env.HALFOPEN_SOAK_SECONDS ?? (ctx.quick ? 60 : 180));
  const rnd = (() => { let a = 12345; return () => { a = (a * 1103515245 + 12345) >>> 0; return a / 4294967296; }; })();
  // Backends: 0..N-1 to start; reloads retire 1 % of the steady ones and add as many from N upwards.
  let names = Array.from({ length: N }, (_, i) => i);
  let nextNew = N;
  const flapping = Array.from({ length: FLAPPING }, (_, k) => SILENT + 1 + Math.floor((k * (N - SILENT - 1)) / FLAPPING));
  const flappingSet = new Set(flapping);
  const witnesses = Array.from({ length: WITNESS_END - WITNESS_FIRST }, (_, k) => WITNESS_FIRST + k).filter((i) => !flappingSet.has(i));
  const cfgFile = path.join(ctx.tmp, 'soak.yaml');
  const events = path.join(ctx.tmp, 'soak-events.ndjson');
  const writeConfig = () => fs.writeFileSync(cfgFile, [
    'defaults: { interval: 1s, timeout: 500ms, fastinter: 250ms, rise: 2, fall: 3 }',
    `listen: { http: "127.0.0.1:${HTTP}" }`,
    `events: ${events}`,
    'backends:',
    ...names.map((i) => `  - { name: b${i}, host: ${addr(i)}, port: 80 }`),
  ].join('\n') + '\n');
  writeConfig();

  return withFleet({ tag: 'soak', v4: '198.18.0.0/16', open: [80], drop: ['198.18.0.0/22'] }, async (fleet) => {
    execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', '-f', '-'], {
      input: 'table inet soak_flap {\n set down { type ipv4_addr; }\n chain input {\n  type filter hook input priority -30;\n  ip daddr @down drop\n }\n}\n',
    });
    const nft = (cmd: string) => execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', cmd]);
    // SYNs to the witnesses, counted in the fleet namespace before anything else sees them.
    execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', '-f', '-'], {
      input: `table inet soak_count {\n chain input {\n  type filter hook input priority -40;\n  ip daddr { ${witnesses.map(addr).join(', ')} } tcp dport 80 tcp flags & (syn | ack | rst | fin) == syn counter\n }\n}\n`,
    });
    const witnessSyns = () => Number(/counter packets (\d+)/.exec(execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', 'list', 'table', 'inet', 'soak_count'], { encoding: 'utf8' }))?.[1] ?? NaN);
    const child = spawnServe(fleet, cfgFile);
    let err = '';
    child.stderr!.on('data', (d) => { err += d; });
    // The status page's poll, once a second, from a client that lives in the namespace.
    const poller = spawn('ip', ['netns', 'exec', fleet.prober, process.execPath, '-e',
      `let n = 0; const t = setInterval(() => { if (++n > ${seconds + 60}) clearInterval(t); fetch('http://127.0.0.1:${HTTP}/status').then(r => r.text()).catch(() => {}); }, 1000);`], { stdio: 'ignore' });
    const series: SoakSeries[] = [];
    const flaps: Array<{ name: string; to: 'up' | 'down'; at: number }> = [];
    try {
      if (!(await waitFor(() => /checking \d+ backends/.test(err) || child.exitCode !== null, 60_000)) || child.exitCode !== null) throw new Error(`serve did not start: ${err}`);
      const pid = child.pid!;
      await sleep(5000); // warm-up: every backend checked a few times
      const t0 = Date.now();
      const m0 = nsFetch(fleet, `http://127.0.0.1:${HTTP}/metrics`);
      let cpu0 = cpuTicks(pid), tc0 = Date.now();
      const cpuStart = cpu0, syn0 = witnessSyns(), tSyn0 = Date.now();
      // Each flapping backend: answering now, goes silent at a random moment within its first 5–20 s.
      const nextToggle = new Map(flapping.map((i) => [i, t0 + 5000 + rnd() * 15_000]));
      const silent = new Set<number>();
      let nextReload = t0 + 30_000, nextScrape = t0 + 5000, reloads = 0;
      let lastMetrics = m0;
      while (Date.now() - t0 < seconds * 1000) {
        const now = Date.now();
        const down: string[] = [], up: string[] = [];
        for (const [i, at] of nextToggle) {
          if (at > now) continue;
          if (silent.has(i)) { silent.delete(i); up.push(addr(i)); flaps.push({ name: `b${i}`, to: 'up', at: now }); }
          else { silent.add(i); down.push(addr(i)); flaps.push({ name: `b${i}`, to: 'down', at: now }); }
          nextToggle.set(i, now + 5000 + rnd() * 15_000);
        }
        if (down.length) nft(`add element inet soak_flap down { ${down.join(', ')} }`);
        if (up.length) nft(`delete element inet soak_flap down { ${up.join(', ')} }`);
        if (now >= nextReload) {
          nextReload += 30_000;
          reloads++;
          const steady = names.filter((i) => i > SILENT && !flappingSet.has(i) && (i < WITNESS_FIRST || i >= WITNESS_END));
          const retire = new Set(steady.filter(() => rnd() < 0.01 * names.length / steady.length));
          const add = Array.from({ length: retire.size }, () => nextNew++);
          names = [...names.filter((i) => !retire.has(i)), ...add];
          writeConfig();
          child.kill('SIGHUP');
        }
        if (now >= nextScrape) {
          nextScrape += 5000;
          lastMetrics = nsFetch(fleet, `http://127.0.0.1:${HTTP}/metrics`);
          const c = cpuTicks(pid), tc = Date.now();
          series.push({ t: (tc - t0) / 1000, rssMb: memory(pid).rssMb, lagMs: metric(lastMetrics, 'halfopen_schedule_lag_seconds') * 1000, cpuPct: (c - cpu0) / ((tc - tc0) / 1000) });
          cpu0 = c; tc0 = tc;
          ctx.log(`  soak: ${Math.round((tc - t0) / 1000)} s: RSS ${series[series.length - 1].rssMb.toFixed(0)} MB, CPU ${series[series.length - 1].cpuPct.toFixed(1)} %, lag ${series[series.length - 1].lagMs.toFixed(0)} ms`);
        }
        await sleep(Math.max(0, 200 - (Date.now() - now)));
      }
      const elapsed = (Date.now() - t0) / 1000;
      const syn1 = witnessSyns(), tSyn1 = Date.now(), cpuEnd = cpuTicks(pid);
      const witnessDue = witnesses.length * ((tSyn1 - tSyn0) / 1000);
      const witnessSeen = syn1 - syn0;
      // Let the last flaps be decided, then count.
      await sleep(3000);
      const m1 = nsFetch(fleet, `http://127.0.0.1:${HTTP}/metrics`);
      const b0 = buckets(m0, 'halfopen_check_lateness_seconds'), b1 = buckets(m1, 'halfopen_check_lateness_seconds');
      const delta = b1.map(([le, c], k) => [le, c - (b0[k]?.[1] ?? 0)] as [number, number]);
      const lost = metric(m1, 'halfopen_checks_sent_total') - metric(m1, 'halfopen_checks_completed_total') - metric(m1, 'halfopen_checks_dropped_total') - metric(m1, 'halfopen_checks_in_flight');
      // Detection: for each toggle, the first event for that backend in that direction after it.
      const evs = fs.readFileSync(events, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { backend: string; to: string; time: string });
      const byName = new Map<string, Array<{ to: string; t: number }>>();
      for (const e of evs) (byName.get(e.backend) ?? byName.set(e.backend, []).get(e.backend)!).push({ to: e.to, t: Date.parse(e.time) });
      const detect: number[] = [];
      let undetected = 0;
      for (let k = 0; k < flaps.length; k++) {
        const f = flaps[k];
        const nextSame = flaps.find((g, j) => j > k && g.name === f.name);
        const ev = (byName.get(f.name) ?? []).find((e) => e.to === f.to && e.t >= f.at && (!nextSame || e.t <= nextSame.at + 100));
        if (ev) detect.push(ev.t - f.at);
        else if (!nextSame || nextSame.at - f.at > 3000) undetected++; // a state held 3 s or more must be seen
      }
      const rssAfterWarm = series.filter((s) => s.t >= Math.min(60, elapsed / 3));
      return {
        id: 'soak',
        title: `Soak: serve with ${N.toLocaleString('en')} backends for ${Math.round(elapsed)} s`,
        notes: [
          `${N} backends at interval 1 s, timeout 500 ms, fastinter 250 ms, rise 2, fall 3; ${SILENT} silent throughout; ${FLAPPING} flapping (each state held 5–20 s at random); a SIGHUP every 30 s swapping 1 % of the backends (${reloads} reloads); /metrics every 5 s, /status every second.`,
          'Lateness: how late checks left against their schedule, from the daemon\'s histogram over the run (bucket upper bounds). Max lag: the worst halfopen_schedule_lag_seconds seen at any scrape.',
          'Detection: from the firewall change to the daemon\'s event, over every flap; a state held 3 s or longer that was never reported counts as not detected.',
          'Lost checks (own counters): sent − completed − dropped by reloads − in flight at the end, from halfopen\'s /metrics (must be 0).',
          `Checks lost (fleet firewall): ${witnesses.length} witness backends (answering, never flapping, never retired by a reload; 198.18.20.0/22) are each due one check a second; an nftables counter in the fleet namespace counts the SYNs that reach them. Due = witnesses × seconds counted; lost = due − counted (negative: more than due; the interval's ±10 % jitter leaves up to about one check per witness either way at the window's edges, here ±${witnesses.length}).`,
          'CPU: total user + sys of the serve process over the whole run ÷ its length, and the worst 5 s window (reloads and scrapes land in windows: the median would hide them).',
          'RSS growth: last sample minus the first sample after warm-up (60 s, or a third of the run).',
        ],
        columns: [
          { key: 'cpuPct', label: 'CPU % of a core (whole run)', digits: 1 },
          { key: 'cpuWorstPct', label: 'worst 5 s window', digits: 1 },
          { key: 'rssMb', label: 'RSS MB (end)', digits: 0 },
          { key: 'rssGrowthMb', label: 'RSS growth after warm-up MB', digits: 1 },
          { key: 'lagP50Ms', label: 'lateness p50 ms', digits: 0 },
          { key: 'lagP99Ms', label: 'lateness p99 ms', digits: 0 },
          { key: 'lagMaxMs', label: 'max lag ms', digits: 0 },
          { key: 'detectMedianMs', label: 'flap detection median ms', digits: 0 },
          { key: 'detectP99Ms', label: 'p99', digits: 0 },
          { key: 'detectMaxMs', label: 'max', digits: 0 },
          { key: 'flaps', label: 'flaps', digits: 0 },
          { key: 'undetected', label: 'not detected', digits: 0 },
          { key: 'lost', label: 'checks lost (own counters)', digits: 0 },
          { key: 'witnessDue', label: 'witness checks due', digits: 0 },
          { key: 'witnessSeen', label: 'counted by the fleet', digits: 0 },
          { key: 'witnessLost', label: 'checks lost (fleet firewall)', digits: 0 },
          { key: 'checksPerSec', label: 'checks/s', digits: 0 },
        ],
        baseline: 'halfopen',
        rows: [{
          tool: 'halfopen serve', settings: `${N} backends, 1 s`,
          runs: [{
            cpuPct: (cpuEnd - cpuStart) / elapsed,
            cpuWorstPct: Math.max(...series.map((s) => s.cpuPct)),
            witnessDue, witnessSeen, witnessLost: witnessDue - witnessSeen,
            rssMb: series[series.length - 1]?.rssMb ?? NaN,
            rssGrowthMb: rssAfterWarm.length ? rssAfterWarm[rssAfterWarm.length - 1].rssMb - rssAfterWarm[0].rssMb : NaN,
            lagP50Ms: quantile(delta, 0.5) * 1000, lagP99Ms: quantile(delta, 0.99) * 1000,
            lagMaxMs: Math.max(...series.map((s) => s.lagMs)),
            detectMedianMs: median(detect), detectP99Ms: percentile(detect, 99), detectMaxMs: Math.max(...detect),
            flaps: flaps.length, undetected, lost,
            checksPerSec: (metric(m1, 'halfopen_checks_sent_total') - metric(m0, 'halfopen_checks_sent_total')) / (elapsed + 3),
          }],
        }],
        series: [
          { title: 'Soak: RSS (MB) over time (s)', unit: 'MB', points: series.map((s) => [s.t, s.rssMb] as [number, number]) },
          { title: 'Soak: worst schedule lag over the last 10–20 s (ms) over time (s)', unit: 'ms', points: series.map((s) => [s.t, s.lagMs] as [number, number]) },
          { title: 'Soak: CPU (% of a core) over time (s)', unit: '%', points: series.map((s) => [s.t, s.cpuPct] as [number, number]) },
        ],
      };
    } finally {
      if (poller.exitCode === null) poller.kill('SIGKILL');
      if (child.exitCode === null) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await done;
        clearTimeout(t);
      }
    }
  });
}
