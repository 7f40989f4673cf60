// Shared contract of the benchmark scenarios (bench/*.ts) and the report
// (bench/run.ts). A scenario measures every tool on the same work in the same
// run and returns one ScenarioResult; the report prints medians (min–max) and
// ratios against the baseline tool, and keeps the raw runs in JSON.
import { ChildProcessByStdio, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Fleet, FleetSpec } from '../src/fleet/fleet';

export const ROOT = path.resolve(__dirname, '../..');
export const MAIN = path.join(ROOT, 'dist/src/cli/main.js');

/** The Environment= of deploy/systemd/halfopen.service: the bench runs serve as the unit does. */
export const SERVE_ENV: Record<string, string> = Object.fromEntries(
  [...fs.readFileSync(path.join(ROOT, 'deploy/systemd/halfopen.service'), 'utf8').matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)].map((m) => [m[1], m[2]]));

/** `halfopen serve --config file` in the fleet's prober namespace, stderr piped, under the unit's environment. */
export const spawnServe = (fleet: Fleet, file: string): ChildProcessByStdio<null, null, Readable> =>
  spawn('ip', ['netns', 'exec', fleet.prober, process.execPath, MAIN, 'serve', '--config', file],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...SERVE_ENV } });

export interface BenchContext {
  /** Smaller sizes and shorter durations: the whole suite in under 2 minutes. */
  quick: boolean;
  /** Repetitions per measurement (median, min, max are reported). */
  runs: number;
  /** Scratch directory, removed after the run. */
  tmp: string;
  log(msg: string): void;
}

/** One run of one tool: metric name → value. */
export type Measurement = Record<string, number>;

export interface Column {
  key: string;
  label: string;
  digits?: number;
  /** Ratio against the baseline is shown for this column (baseline / peer, or peer / baseline). */
  ratio?: 'lower-is-better' | 'higher-is-better';
}

export interface ScenarioResult {
  id: string;
  title: string;
  /** What was run and how: printed under the table. */
  notes: string[];
  columns: Column[];
  /** Tool whose figures the ratios compare against (halfopen). */
  baseline: string;
  rows: Array<{ tool: string; settings: string; runs: Measurement[]; target?: string }>;
  /** Time series drawn as line charts in the report's SVG and in a chart of their own (x: seconds). */
  series?: Array<{ title: string; unit: string; points: Array<[number, number]> }>;
}

export type Scenario = (ctx: BenchContext) => Promise<ScenarioResult>;

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};

export const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};

export const have = (bin: string): boolean => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;

/** First version line of a tool, or "not installed". */
export function toolVersion(cmd: string): string {
  const out = spawnSync('sh', ['-c', `${cmd} 2>&1 | head -3`], { encoding: 'utf8' }).stdout ?? '';
  const line = out.split('\n').find((l) => /\d+\.\d+/.test(l));
  return line ? line.trim().replace(/\s*\(.*\)\s*$/, '') : `${cmd.split(' ')[0]}: not installed`;
}

export async function withFleet<T>(spec: FleetSpec, fn: (f: Fleet) => Promise<T> | T): Promise<T> {
  const f = await Fleet.create(spec);
  try { return await fn(f); } finally { f.remove(); }
}

/**
 * Runs argv inside the fleet's prober namespace under /usr/bin/time: wall
 * seconds, CPU seconds (user + sys) and peak RSS in MB of the whole command.
 */
export function timed(fleet: Fleet, argv: string[], stdoutFile: string, tmp: string, timeoutMs = 600_000): { wall: number; cpu: number; rssMb: number; exit: number } {
  const timeFile = path.join(tmp, 'time.txt');
  const t0 = process.hrtime.bigint();
  const r = spawnSync('ip', ['netns', 'exec', fleet.prober, '/usr/bin/time', '-o', timeFile, '-f', '%U %S %M', ...argv], {
    stdio: ['ignore', fs.openSync(stdoutFile, 'w'), 'pipe'], timeout: timeoutMs,
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const [u, s, m] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return { wall, cpu: u + s, rssMb: m / 1024, exit: r.status ?? -1 };
}

/** CPU ticks (user + sys, 1/100 s) a process has used so far, from /proc. */
export function cpuTicks(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}

/** Resident and peak resident memory of a process, MB. */
export function memory(pid: number): { rssMb: number; hwmMb: number } {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

export { setTimeout as sleep } from 'node:timers/promises';
export { waitFor } from '../src/wait';

/** CPU time of the whole machine (every process, kernel and softirq), in 1/100 s. */
export function machineTicks(): number {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
}

/** GET url from inside the fleet's prober namespace (where serve listens); the body. */
export function nsFetch(fleet: Fleet, url: string): string {
  return fleet.exec('prober', process.execPath, ['-e', `fetch(${JSON.stringify(url)}).then(r => r.text()).then(t => process.stdout.write(t))`]);
}

/** The value of an unlabelled (or fully spelled-out) series in Prometheus text; NaN when absent. */
export function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

/** Prometheus histogram buckets of `name` (le → cumulative count), in order. */
export function buckets(text: string, name: string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)$`, 'gm'))) out.push([m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])]);
  return out;
}

/** Cumulative buckets of what was observed between two scrapes (same bounds). */
export const bucketDelta = (from: Array<[number, number]>, to: Array<[number, number]>): Array<[number, number]> =>
  to.map(([le, c], k) => [le, c - (from[k]?.[1] ?? 0)]);

/**
 * The q-quantile of cumulative buckets, interpolated linearly inside its
 * bucket (as Prometheus's histogram_quantile); the highest finite bound when
 * it lies in +Inf; NaN when nothing was observed.
 */
export function bucketQuantile(cum: Array<[number, number]>, q: number): number {
  const total = cum[cum.length - 1]?.[1] ?? 0;
  if (!total) return NaN;
  const want = q * total;
  let lo = 0, cLo = 0;
  for (const [le, c] of cum) {
    if (c >= want) return le === Infinity ? lo : lo + ((le - lo) * (want - cLo)) / Math.max(1, c - cLo);
    lo = le; cLo = c;
  }
  return lo;
}

/** Share (0–1) of cumulative buckets' observations at or below `le` (a bucket bound). */
export function bucketShare(cum: Array<[number, number]>, le: number): number {
  const total = cum[cum.length - 1]?.[1] ?? 0;
  return total ? (cum.find(([b]) => b === le)?.[1] ?? NaN) / total : NaN;
}
