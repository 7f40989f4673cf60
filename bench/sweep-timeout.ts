// Time to a complete result with silent targets: halfopen with --timeout auto
// (the default), with the former fixed 1000 ms and with 500 ms, and zmap
// -r 0 -c 1, on one fleet in the same run, rounds interleaved. 6.6 % of a /16
// is dropped (filtered): a fixed wait costs every silent probe two timeouts'
// worth of waiting, an adaptive one waits what the network's RTTs say.
// `node dist/bench/run.js --only sweep-timeout`.
import fs from 'node:fs';
import path from 'node:path';
import { Fleet, PROBER_V4 } from '../src/fleet/fleet';
import { formatAddress, mustParseAddress } from '../src/targets/address';
import { BenchContext, Column, MAIN, Measurement, Scenario, ScenarioResult, have, timed, toolVersion, withFleet } from './lib';

const COLUMNS: Column[] = [
  { key: 'wall', label: 'wall s (to the complete result)', digits: 2, ratio: 'lower-is-better' },
  { key: 'missed', label: 'missed open', digits: 0 },
  { key: 'wrong', label: 'wrong verdicts (all states)', digits: 0 },
  { key: 'waitMs', label: 'wait after last pass, ms', digits: 0 },
  { key: 'cpu', label: 'CPU s', digits: 2, ratio: 'lower-is-better' },
];

type Row = ScenarioResult['rows'][number];

function rowOf(rows: Row[], tool: string, settings: string): Row {
  let r = rows.find((x) => x.tool === tool);
  if (!r) rows.push(r = { tool, settings, runs: [] });
  return r;
}

/** The fleet: a /16 (quick: a /20) on port 80 with 6.6 % (quick: 6.25 %) of its /24s dropped. */
function spec(quick: boolean): { prefix: string; drop: string[] } {
  if (quick) return { prefix: '198.18.0.0/20', drop: ['198.18.7.0/24'] };
  return { prefix: '198.18.0.0/16', drop: Array.from({ length: 17 }, (_, k) => `198.18.${7 + 15 * k}.0/24`) };
}

function halfopen(ctx: BenchContext, fleet: Fleet, prefix: string, probes: number, flags: string[]): Measurement {
  const out = path.join(ctx.tmp, 'timeout.ndjson'), meta = path.join(ctx.tmp, 'timeout.json');
  const t = timed(fleet, [process.execPath, MAIN, 'sweep', prefix, '-p', '80', '--rate', '0', ...flags, '--format', 'ndjson', '--no-progress', '--metadata-file', meta], out, ctx.tmp);
  let n = 0, wrong = 0, missed = 0;
  for (const l of fs.readFileSync(out, 'utf8').split('\n')) {
    if (!l) continue;
    const r = JSON.parse(l);
    n++;
    const want = fleet.truth(mustParseAddress(r.ip), r.port);
    if (r.state !== want) wrong++;
    if (want === 'open' && r.state !== 'open') missed++;
  }
  const rec = JSON.parse(fs.readFileSync(meta, 'utf8'));
  return { wall: t.wall, missed, wrong: wrong + Math.abs(probes - n), waitMs: rec.timeout?.ms ?? NaN, cpu: t.cpu, exit: t.exit };
}

function zmap(ctx: BenchContext, fleet: Fleet, prefix: string, probes: number): Measurement {
  const gw = fleet.exec('fleet', 'cat', [`/sys/class/net/${fleet.fleetIf}/address`]).trim();
  const out = path.join(ctx.tmp, 'zmap.txt');
  const t = timed(fleet, ['zmap', '-q', '--disable-syslog', '-p', '80', '-i', fleet.proberIf, '-S', PROBER_V4, '-G', gw, '-b', '/dev/null',
    '-r', '0', '-c', '1', '-o', out, prefix], path.join(ctx.tmp, 'zmap.stdout'), ctx.tmp);
  const opens = new Set(fs.readFileSync(out, 'utf8').split('\n').filter((l) => /^\d/.test(l)).map((l) => l.trim()));
  let missed = 0, falseOpen = 0;
  const base = mustParseAddress(prefix.split('/')[0]);
  for (let i = 0; i < probes; i++) {
    const a = base + BigInt(i);
    const ip = formatAddress(a);
    const open = fleet.truth(a, 80) === 'open';
    if (open && !opens.has(ip)) missed++;
    if (!open && opens.has(ip)) falseOpen++;
  }
  // zmap reports opens only: a wrong verdict is a missed or a false open.
  return { wall: t.wall, missed, wrong: missed + falseOpen, waitMs: 1000, cpu: t.cpu, exit: t.exit };
}

const log = (ctx: BenchContext, tool: string, m: Measurement) =>
  ctx.log(`${tool}: ${m.wall.toFixed(2)} s, missed ${m.missed}, wrong ${m.wrong}, wait ${m.waitMs} ms, CPU ${m.cpu.toFixed(2)} s${m.exit ? `, exit ${m.exit}` : ''}`);

export const sweepTimeoutScenario: Scenario = async (ctx) => {
  const { prefix, drop } = spec(ctx.quick);
  const probes = 2 ** (32 - Number(prefix.split('/')[1]));
  const rows: Row[] = [];
  const notes: string[] = [];
  const variants: [string, string[]][] = [['halfopen --timeout auto', []], ['halfopen --timeout 1000', ['--timeout', '1000']], ['halfopen --timeout 500', ['--timeout', '500']]];
  await withFleet({ tag: 'bench', v4: prefix, open: [80], drop }, async (fleet) => {
    notes.push(`${probes.toLocaleString('en-US')} targets (${prefix}) on port 80; ${drop.length} /24s dropped by nftables (${(100 * drop.length * 256 / probes).toFixed(2)} % silent, filtered), the rest open. halfopen: \`--rate 0 --retries 1\` (the default retries); the wall time ends with the last row written.`);
    for (let i = 0; i < ctx.runs; i++) {
      ctx.log(`run ${i + 1}/${ctx.runs}`);
      for (const [tool, flags] of variants) {
        const m = halfopen(ctx, fleet, prefix, probes, flags);
        rowOf(rows, tool, flags.join(' ') || '(default)').runs.push(m);
        log(ctx, tool, m);
      }
      if (have('zmap')) {
        const m = zmap(ctx, fleet, prefix, probes);
        rowOf(rows, `zmap ${/\d+\.\d+(\.\d+)?/.exec(toolVersion('zmap --version'))?.[0] ?? ''}`.trim(), '-r 0 -c 1').runs.push(m);
        log(ctx, 'zmap', m);
      }
    }
  });
  if (!have('zmap')) notes.push('zmap is not installed: skipped.');
  notes.push('`wait after last pass`: what halfopen\'s run record says it waited after the last SYN of the last pass (auto: 3 × the 99th percentile RTT, within 50 ms and --max-timeout 1000 ms); zmap\'s is its fixed cool-down `-c 1`.');
  return { id: 'sweep-timeout', title: `Sweep with silent targets: time to a complete result (${probes.toLocaleString('en-US')} probes)`, notes, columns: COLUMNS, baseline: 'halfopen --timeout auto', rows };
};
