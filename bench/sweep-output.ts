// What delivering a sweep's output whole costs: the 1,048,576-probe sweep
// (quick: 65,536) with -o FILE, with -o FILE --checkpoint STATE (target: at
// most 5 % less throughput), and with ndjson through a pipe into `cat > FILE`
// (target: at most 10 % less than -o). The variants alternate within each
// round so that drift in the machine's load falls on all of them alike.
import fs from 'node:fs';
import path from 'node:path';
import { Fleet } from '../src/fleet/fleet';
import { Column, MAIN, Measurement, Scenario, ScenarioResult, timed, withFleet } from './lib';
import { stopIfInterrupted } from './sweep';

const COLUMNS: Column[] = [
  { key: 'wall', label: 'wall s', digits: 2 },
  { key: 'pps', label: 'probes/s', digits: 0, ratio: 'higher-is-better' },
  { key: 'rows', label: 'rows', digits: 0 },
  { key: 'cpu', label: 'CPU s', digits: 2, ratio: 'lower-is-better' },
  { key: 'rssMb', label: 'peak RSS MB', digits: 0, ratio: 'lower-is-better' },
];

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Lines in a file, counted without holding it as one string. */
function countLines(file: string): number {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(1 << 20);
  let n = 0;
  try {
    for (let got; (got = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) for (let i = 0; i < got; i++) if (buf[i] === 10) n++;
  } finally { fs.closeSync(fd); }
  return n;
}

export const sweepOutputScenario: Scenario = async (ctx) => {
  const prefix = ctx.quick ? '198.18.0.0/20' : '198.18.0.0/16';
  const probes = (ctx.quick ? 4096 : 65536) * 16;
  const sweep = [process.execPath, MAIN, 'sweep', prefix, '-p', '80-95', '--rate', '0', '--format', 'ndjson', '--no-progress'];
  const out = path.join(ctx.tmp, 'out.ndjson');
  const state = path.join(ctx.tmp, 'out.state');
  const variants: Array<{ tool: string; settings: string; argv: string[] }> = [
    // Peer names must not start with the baseline's: the report would take them for baselines too.
    { tool: 'halfopen, -o FILE', settings: '--rate 0 -o FILE', argv: [...sweep, '-o', out] },
    { tool: 'with a checkpoint', settings: '--rate 0 -o FILE --checkpoint STATE (saved every 2 s)', argv: [...sweep, '-o', out, '--checkpoint', state] },
    { tool: 'through a pipe', settings: '--rate 0, stdout into `cat > FILE` (cat\'s CPU included)', argv: ['bash', '-c', `${sweep.map(q).join(' ')} | cat > ${q(out)}`] },
  ];
  const rows: ScenarioResult['rows'] = variants.map((v) => ({ tool: v.tool, settings: v.settings, runs: [] as Measurement[] }));
  await withFleet({ tag: 'bench', v4: prefix, open: [80, 81, 82, 83] }, async (fleet: Fleet) => {
    for (let round = 0; round < ctx.runs; round++) {
      for (const [i, v] of variants.entries()) {
        fs.rmSync(out, { force: true });
        const t = timed(fleet, v.argv, path.join(ctx.tmp, 'stdout'), ctx.tmp);
        stopIfInterrupted(v.tool, t.exit);
        const n = countLines(out);
        if (t.exit !== 0 || n !== probes) throw new Error(`${v.tool}: exit ${t.exit}, ${n} of ${probes} rows`);
        const m: Measurement = { wall: t.wall, pps: probes / t.wall, rows: n, cpu: t.cpu, rssMb: t.rssMb, exit: t.exit };
        rows[i].runs.push(m);
        ctx.log(`${v.tool}: ${t.wall.toFixed(2)} s, ${Math.round(m.pps)} probes/s, CPU ${t.cpu.toFixed(2)} s`);
      }
    }
  });
  return {
    id: 'sweep-output',
    title: `Output delivered whole: ${probes.toLocaleString('en-US')} probes, checkpoint and pipe against -o`,
    notes: [
      'Targets: checkpointing costs at most 5 % of the throughput of `-o FILE`; ndjson through a pipe into `cat > FILE` at most 10 %.',
      'The variants alternate within each round. On a machine shared with other work, wall time swings widely; CPU seconds are the steadier measure of the cost.',
    ],
    columns: COLUMNS,
    baseline: 'halfopen, -o FILE',
    rows,
  };
};
