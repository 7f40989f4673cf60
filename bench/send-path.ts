// Send-path ceiling: the sweep's probe count against a fleet whose veth drops
// every packet in XDP, so no reply comes back and the fleet's kernel does the
// least possible work per SYN. What is left is halfopen's send path (raw
// socket or AF_PACKET, 1 or 2 sender threads) against the machine's limit,
// with the CPU each SYN costs.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Fleet } from '../src/fleet/fleet';
import { BenchContext, Column, MAIN, Measurement, Scenario, ScenarioResult, withFleet } from './lib';
import { stopIfInterrupted } from './sweep';

const COLUMNS: Column[] = [
  { key: 'wall', label: 'wall s', digits: 2 },
  { key: 'synPps', label: 'SYNs/s (probes ÷ wall)', digits: 0, ratio: 'higher-is-better' },
  { key: 'enginePps', label: 'engine probes/s (summary line)', digits: 0 },
  { key: 'deliveredPct', label: 'reached the fleet %', digits: 1 },
  { key: 'txDropped', label: 'prober tx_dropped', digits: 0 },
  { key: 'cpu', label: 'CPU s', digits: 2, ratio: 'lower-is-better' },
  { key: 'cpuUsPerSyn', label: 'CPU µs per SYN', digits: 2 },
  { key: 'rssMb', label: 'peak RSS MB', digits: 0 },
];

interface LinkCounters { fleetRx: number; proberTx: number; proberTxDropped: number }

function counters(fleet: Fleet): LinkCounters {
  const p = fleet.proberLinkStats();
  return { fleetRx: fleet.fleetLinkStats().rxPackets, proberTx: p.txPackets, proberTxDropped: p.txDropped };
}

/** Like lib's timed(), but keeps the command's stderr (halfopen's summary line). */
function timedWithStderr(fleet: Fleet, argv: string[], tmp: string): { wall: number; cpu: number; rssMb: number; exit: number; stderr: string } {
  const timeFile = path.join(tmp, 'time.txt');
  const t0 = process.hrtime.bigint();
  const r = spawnSync('ip', ['netns', 'exec', fleet.prober, '/usr/bin/time', '-o', timeFile, '-f', '%U %S %M', ...argv], {
    stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 600_000,
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const [u, s, m] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return { wall, cpu: u + s, rssMb: m / 1024, exit: r.status ?? -1, stderr: r.stderr ?? '' };
}

interface Config { tool: string; settings: string; argv: string[] }

export const sendPathScenario: Scenario = async (ctx: BenchContext): Promise<ScenarioResult> => {
  const prefix = ctx.quick ? '198.18.0.0/20' : '198.18.0.0/16';
  const probes = (ctx.quick ? 4096 : 65536) * 16;
  const configs: Config[] = [];
  for (const sendPath of ['packet', 'raw'] as const)
    for (const senders of [2, 1]) {
      configs.push({
        tool: `halfopen ${sendPath}, ${senders} sender${senders > 1 ? 's' : ''}`,
        settings: `--send-path ${sendPath} --senders ${senders} --rate 0 --retries 0 --timeout 1`,
        argv: [process.execPath, MAIN, 'sweep', prefix, '-p', '80-95', '--send-path', sendPath, '--senders', String(senders),
          '--rate', '0', '--retries', '0', '--timeout', '1', '--open', '--format', 'ndjson', '--no-progress'],
      });
    }
  const rows: ScenarioResult['rows'] = configs.map((c) => ({ tool: c.tool, settings: c.settings, runs: [] as Measurement[] }));
  let xdpMode = '';
  await withFleet({ tag: 'bench', v4: prefix, open: [] }, async (fleet) => {
    xdpMode = fleet.attachFleetXdp('XDP_DROP');
    try {
      for (let i = 0; i < ctx.runs; i++) {
        ctx.log(`run ${i + 1}/${ctx.runs}`);
        configs.forEach((c, k) => {
          const before = counters(fleet);
          const t = timedWithStderr(fleet, c.argv, ctx.tmp);
          stopIfInterrupted(c.tool, t.exit);
          const after = counters(fleet);
          const summary = /probes in ([\d.]+) s \((\d+)\/s\)/.exec(t.stderr);
          const fleetRx = after.fleetRx - before.fleetRx;
          const m: Measurement = {
            wall: t.wall, probes, synPps: probes / t.wall, deliveredPct: (100 * fleetRx) / probes,
            fleetRx, proberTx: after.proberTx - before.proberTx, txDropped: after.proberTxDropped - before.proberTxDropped,
            cpu: t.cpu, cpuUsPerSyn: (t.cpu * 1e6) / probes, rssMb: t.rssMb, exit: t.exit,
          };
          if (summary) { m.engineS = Number(summary[1]); m.enginePps = Number(summary[2]); }
          rows[k].runs.push(m);
          ctx.log(`${c.tool}: ${t.wall.toFixed(2)} s, ${Math.round(m.synPps)} SYN/s${summary ? ` (engine ${summary[2]}/s)` : ''}, fleet rx ${fleetRx}, tx_dropped ${m.txDropped}, CPU ${t.cpu.toFixed(2)} s${t.exit ? `, exit ${t.exit}: ${t.stderr.trim().split('\n').pop()}` : ''}`);
        });
      }
    } finally {
      fleet.detachFleetXdp();
    }
  });
  return {
    id: 'send-path',
    title: `Send-path ceiling: ${probes.toLocaleString('en-US')} SYNs to a fleet that drops everything in XDP`,
    notes: [
      `${prefix} × ports 80–95; an XDP_DROP program (compiled at bench time) on the fleet-side veth, ${xdpMode} mode, so no reply comes back and each SYN costs the fleet as little as it can.`,
      'SYNs/s is probes ÷ whole-process wall time (Node start, XDP load and sender start-up included); the engine column is halfopen\'s own summary line (from the engine being ready to the last verdict, here 1 ms after the last SYN).',
      '"reached the fleet" is the fleet-side veth\'s rx packets ÷ probes; prober tx_dropped counts SYNs the veth dropped because the fleet\'s 256-slot ring was full: unpaced loss shows there, not as an error in the sender.',
      'The fleet\'s kernel shares the 2 cores: the XDP drop runs in softirq on the same CPUs as the senders, so two senders compete with it, and the figures are this machine\'s ceiling with a receiver on it, not a NIC\'s.',
      'Baseline: `packet, 2 senders`, which is what `--send-path auto` and the default `--senders` (one per core) pick here.',
      'CPU µs per SYN is the whole process\'s user + sys time ÷ probes, start-up included (about 0.3 s of it is Node and the XDP load): the machine\'s ceiling for a path is about 2 cores ÷ that cost. The XDP drop on the fleet side runs in softirq and is partly charged to the sender.',
    ],
    columns: COLUMNS,
    baseline: 'halfopen packet, 2 senders',
    rows,
  };
};
