// npm run bench [-- --quick] [--runs N] [--only a,b]
// Sweep benchmarks against a namespace fleet: halfopen and its peers on the
// same work in the same run. Correctness is scored against the fleet's ground
// truth (how it was built), never against another tool. Prints markdown and
// writes it with the raw JSON to bench/results/.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet, FleetSpec, PROBER_V4 } from '../src/fleet/fleet';
import { mustParseAddress, formatAddress } from '../src/targets/address';

const ROOT = path.resolve(__dirname, '../..');
const MAIN = path.join(ROOT, 'dist/src/cli/main.js');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const runs = Number(args[args.indexOf('--runs') + 1]) || (quick ? 1 : 3);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1].split(',') : null;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-bench-'));

interface Measure { wall: number; cpu: number; rssMb: number; open: number; missed: number; falseOpen: number; exit: number }
interface Row { scenario: string; tool: string; probes: number; settings: string; runs: Measure[] }
const rows: Row[] = [];

function timed(fleet: Fleet, argv: string[], stdoutFile: string): { wall: number; cpu: number; rssMb: number; exit: number } {
  const timeFile = path.join(tmp, 'time.txt');
  const t0 = process.hrtime.bigint();
  const r = spawnSync('ip', ['netns', 'exec', fleet.prober, '/usr/bin/time', '-o', timeFile, '-f', '%U %S %M', ...argv], {
    stdio: ['ignore', fs.openSync(stdoutFile, 'w'), 'pipe'], timeout: 600_000,
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const [u, s, m] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return { wall, cpu: u + s, rssMb: m / 1024, exit: r.status ?? -1 };
}

function score(fleet: Fleet, opens: Set<string>, targets: Array<[bigint, number]>): { open: number; missed: number; falseOpen: number } {
  let missed = 0, falseOpen = 0, truthOpen = 0;
  for (const [a, p] of targets) {
    const want = fleet.truth(a, p) === 'open';
    const got = opens.has(`${formatAddress(a)} ${p}`);
    if (want) truthOpen++;
    if (want && !got) missed++;
    if (!want && got) falseOpen++;
  }
  void truthOpen;
  return { open: opens.size, missed, falseOpen };
}

function v4Targets(prefix: string, ports: number[]): Array<[bigint, number]> {
  const [a, len] = prefix.split('/');
  const base = mustParseAddress(a);
  const n = 2 ** (32 - Number(len));
  const out: Array<[bigint, number]> = [];
  for (let i = 0; i < n; i++) for (const p of ports) out.push([base + BigInt(i), p]);
  return out;
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
const fmt = (xs: number[], d = 2) => `${median(xs).toFixed(d)} (${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)})`;

async function withFleet(spec: FleetSpec, fn: (f: Fleet) => Promise<void> | void): Promise<void> {
  const f = await Fleet.create(spec);
  try { await fn(f); } finally { f.remove(); }
}

function readLines(file: string): string[] { return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean); }

function halfopenOpens(file: string): Set<string> {
  const s = new Set<string>();
  for (const l of readLines(file)) { const r = JSON.parse(l); if (r.state === 'open') s.add(`${r.ip} ${r.port}`); }
  return s;
}

function record(scenario: string, tool: string, probes: number, settings: string, m: Measure): void {
  let row = rows.find((r) => r.scenario === scenario && r.tool === tool);
  if (!row) rows.push(row = { scenario, tool, probes, settings, runs: [] });
  row.runs.push(m);
  process.stderr.write(`  ${scenario} ${tool}: ${m.wall.toFixed(2)} s, missed ${m.missed}, false ${m.falseOpen}, rss ${m.rssMb.toFixed(0)} MB\n`);
}

const have = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;

async function sweep65k(): Promise<void> {
  // 65,536 targets on one port: 65,024 open, 512 answer RST.
  const prefix = quick ? '198.18.0.0/20' : '198.18.0.0/16';
  const closed = quick ? ['198.18.15.0/24'] : ['198.18.254.0/23'];
  const name = quick ? 'sweep 4k×1' : 'sweep 65k×1';
  await withFleet({ tag: 'bench', v4: prefix, open: [80], closed }, async (fleet) => {
    const targets = v4Targets(prefix, [80]);
    const gw = fleet.exec('fleet', 'cat', [`/sys/class/net/${fleet.fleetIf}/address`]).trim();
    const me = fleet.exec('prober', 'cat', [`/sys/class/net/${fleet.proberIf}/address`]).trim();
    for (let i = 0; i < runs; i++) {
      const out = path.join(tmp, 'out.txt');
      let t = timed(fleet, [process.execPath, MAIN, 'sweep', prefix, '-p', '80', '--rate', '0', '--timeout', '1000', '--format', 'ndjson', '--no-progress'], out);
      record(name, 'halfopen', targets.length, '--rate 0 --timeout 1000', { ...t, ...score(fleet, halfopenOpens(out), targets) });
      if (have('zmap')) {
        t = timed(fleet, ['zmap', '-q', '--disable-syslog', '-p', '80', '-i', fleet.proberIf, '-S', PROBER_V4, '-G', gw, '-b', '/dev/null',
          '-r', '300000', '-c', '1', '-o', out, prefix], path.join(tmp, 'zmap.stdout'));
        const opens = new Set(readLines(out).filter((l) => /^\d/.test(l)).map((l) => `${l.trim()} 80`));
        record(name, 'zmap 2.1', targets.length, '-r 300000 -c 1', { ...t, ...score(fleet, opens, targets) });
      }
      if (have('masscan')) {
        t = timed(fleet, ['masscan', prefix, '-p80', '--rate', '300000', '--adapter', fleet.proberIf, '--adapter-ip', PROBER_V4,
          '--adapter-mac', me, '--router-mac', gw, '--wait', '1', '-oL', out], path.join(tmp, 'masscan.stdout'));
        const opens = new Set(readLines(out).filter((l) => l.startsWith('open')).map((l) => { const f = l.split(' '); return `${f[3]} ${f[2]}`; }));
        record(name, 'masscan 1.3', targets.length, '--rate 300000 --wait 1', { ...t, ...score(fleet, opens, targets) });
      }
    }
    if (have('nmap')) {
      // nmap on a 4,096-target subset: at full size it takes minutes.
      const sub = quick ? '198.18.0.0/22' : '198.18.0.0/20';
      const subTargets = v4Targets(sub, [80]);
      for (let i = 0; i < runs; i++) {
        const out = path.join(tmp, 'nmap.txt');
        const t = timed(fleet, ['nmap', '-n', '-Pn', '-sS', '-p', '80', '-e', fleet.proberIf, '--min-rate', '20000', '-T5', '-oG', out, sub], path.join(tmp, 'nmap.stdout'));
        const opens = new Set(readLines(out).filter((l) => l.includes('80/open/')).map((l) => `${l.split(' ')[1]} 80`));
        record(`${name} (nmap subset)`, 'nmap 7.93', subTargets.length, '-sS -T5 --min-rate 20000', { ...t, ...score(fleet, opens, subTargets) });
      }
    }
  });
}

async function sweep1m(): Promise<void> {
  const prefix = quick ? '198.18.0.0/20' : '198.18.0.0/16';
  const name = quick ? 'sweep 4k×16' : 'sweep 65k×16 (1M)';
  const ports = Array.from({ length: 16 }, (_, i) => 80 + i);
  await withFleet({ tag: 'bench', v4: prefix, open: [80, 81, 82, 83] }, async (fleet) => {
    const targets = v4Targets(prefix, ports);
    for (let i = 0; i < runs; i++) {
      const out = path.join(tmp, 'out.txt');
      const t = timed(fleet, [process.execPath, MAIN, 'sweep', prefix, '-p', '80-95', '--rate', '0', '--format', 'ndjson', '--no-progress'], out);
      // Every verdict, not only opens, must match.
      let wrong = 0, n = 0;
      for (const l of readLines(out)) { const r = JSON.parse(l); n++; if (fleet.truth(mustParseAddress(r.ip), r.port) !== r.state) wrong++; }
      const s = score(fleet, halfopenOpens(out), targets);
      record(name, 'halfopen', targets.length, '--rate 0', { ...t, ...s, falseOpen: s.falseOpen + wrong + (targets.length - n) });
    }
  });
}

async function sweep16m(): Promise<void> {
  const prefix = quick ? '2001:2::/112' : '2001:2::/104';
  const probes = quick ? 65536 : 16777216;
  const name = quick ? 'sweep 65k dropped (v6)' : 'sweep 16M dropped (v6 /104)';
  await withFleet({ tag: 'bench', v6: prefix, open: [], drop: [prefix] }, async (fleet) => {
    for (let i = 0; i < Math.min(runs, quick ? 1 : 1); i++) {
      const out = path.join(tmp, 'out.txt');
      const t = timed(fleet, [process.execPath, MAIN, 'sweep', prefix, '-p', '80', '--rate', '0', '--retries', '0', '--timeout', '500', '--format', 'ndjson', '--no-progress'], out);
      const lines = Number(execFileSync('wc', ['-l', out], { encoding: 'utf8' }).split(' ')[0]);
      record(name, 'halfopen', probes, '--rate 0 --retries 0', { ...t, open: 0, missed: probes - lines, falseOpen: 0 });
    }
  });
}

function report(): string {
  const facts = [
    `cores ${os.availableParallelism()}, kernel ${os.release()}, node ${process.version}`,
    ...['zmap --version', 'masscan --version', 'nmap --version'].map((c) => {
      const out = spawnSync('sh', ['-c', `${c} 2>&1 | grep -m1 -iE '(zmap|masscan|nmap).*[0-9]+\\.[0-9]'`], { encoding: 'utf8' }).stdout.trim();
      return out.replace(/\s*\(.*\)\s*$/, '') || `${c.split(' ')[0]}: not installed`;
    }),
  ];
  let md = `# halfopen sweep benchmarks\n\n${new Date().toISOString()} · ${facts.join(' · ')}\n\n`;
  md += `Median over ${runs} run(s), (min–max). Correctness against the fleet's ground truth. Wall includes process start and, for peers, their fixed cool-down.\n\n`;
  for (const scenario of [...new Set(rows.map((r) => r.scenario))]) {
    const rs = rows.filter((r) => r.scenario === scenario);
    const ho = rs.find((r) => r.tool === 'halfopen');
    md += `## ${scenario}\n\n| tool | settings | wall s | probes/s | missed open | wrong | CPU s | peak RSS MB | wall vs halfopen |\n|---|---|---|---|---|---|---|---|---|\n`;
    for (const r of rs) {
      const wall = r.runs.map((m) => m.wall);
      const ratio = ho && r !== ho ? `${(median(wall) / median(ho.runs.map((m) => m.wall))).toFixed(2)}×` : '';
      md += `| ${r.tool} | \`${r.settings}\` | ${fmt(wall)} | ${Math.round(r.probes / median(wall))} | ${fmt(r.runs.map((m) => m.missed), 0)} | ${fmt(r.runs.map((m) => m.falseOpen), 0)} | ${fmt(r.runs.map((m) => m.cpu))} | ${fmt(r.runs.map((m) => m.rssMb), 0)} | ${ratio} |\n`;
    }
    md += '\n';
  }
  return md;
}

async function main(): Promise<void> {
  const scenarios: Record<string, () => Promise<void>> = { sweep65k, sweep1m, sweep16m };
  try {
    for (const [name, fn] of Object.entries(scenarios)) {
      if (only && !only.includes(name)) continue;
      process.stderr.write(`${name}…\n`);
      await fn();
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const md = report();
  process.stdout.write(md);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = path.join(ROOT, 'bench/results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `sweep-${quick ? 'quick-' : ''}${stamp}.md`), md);
  fs.writeFileSync(path.join(dir, `sweep-${quick ? 'quick-' : ''}${stamp}.json`), JSON.stringify(rows, null, 2));
}

void main().catch((e) => { process.stderr.write(`bench: ${e.stack ?? e}\n`); process.exitCode = 1; });
