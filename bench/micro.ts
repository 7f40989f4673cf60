// Micro-benchmarks of the sweep's index arithmetic, moved here from the unit
// tier (where they were "informational" tests that could not fail): calls per
// second of Permutation.at (the keyed probe order) at three space sizes, and of
// ProbeSpace.at (index → address and port) over a mixed IPv4/IPv6 space. No
// privileges, no fleet: one process, median (min–max) over the runs.
//
// A scenario of `npm run bench` (microScenario): `--only micro`.
import { Permutation } from '../src/targets/permutation';
import { ProbeSpace } from '../src/targets/probe-space';
import { parseExcludeSpec } from '../src/targets/target-set';
import { BenchContext, Measurement, Scenario, ScenarioResult } from './lib';

/** Calls per second of fn over `calls` calls (after one warm-up pass of a tenth). */
function rate(calls: number, fn: (i: number) => number): Measurement {
  let sink = 0;
  for (let i = 0; i < calls / 10; i++) sink += fn(i);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) sink += fn(i);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (!(sink > 0)) throw new Error('the benchmarked function returned nothing');
  return { callsPerSec: calls / secs, nsPerCall: (secs * 1e9) / calls };
}

export const microScenario: Scenario = async (ctx: BenchContext): Promise<ScenarioResult> => {
  const calls = ctx.quick ? 500_000 : 2_000_000;
  const rows: ScenarioResult['rows'] = [];
  for (const n of [1_000_003, 2 ** 24 + 1, 2 ** 52 + 1]) {
    const p = new Permutation(n, 12345n);
    const row = { tool: `Permutation(${n.toLocaleString('en-US')}).at`, settings: `${calls.toLocaleString('en-US')} calls`, runs: [] as Measurement[] };
    for (let r = 0; r < ctx.runs; r++) row.runs.push(rate(calls, (i) => p.at(i % n) + 1));
    ctx.log(`${row.tool}: ${Math.round(row.runs[0].callsPerSec).toLocaleString('en-US')} calls/s`);
    rows.push(row);
  }
  const s = new ProbeSpace({ ranges: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '2001:db8::/96'].map(parseExcludeSpec), ports: [80, 443, 8080] });
  const row = { tool: 'ProbeSpace.at', settings: '10/8, 172.16/12, 192.168/16, 2001:db8::/96 × 3 ports', runs: [] as Measurement[] };
  for (let r = 0; r < ctx.runs; r++) row.runs.push(rate(calls / 2, (i) => s.at((i * 7919) % s.size).port));
  ctx.log(`${row.tool}: ${Math.round(row.runs[0].callsPerSec).toLocaleString('en-US')} calls/s`);
  rows.push(row);
  return {
    id: 'micro',
    title: 'Index arithmetic: Permutation.at and ProbeSpace.at',
    notes: ['One process, no fleet. Each run times the calls after a warm-up of a tenth as many. These were the unit tier\'s two "throughput (informational)" tests: a figure, not a pass/fail.'],
    columns: [
      { key: 'callsPerSec', label: 'calls/s', digits: 0 },
      { key: 'nsPerCall', label: 'ns per call', digits: 0 },
    ],
    baseline: 'none',
    rows,
  };
};
