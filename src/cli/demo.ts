// `halfopen demo`: builds a throwaway fleet in network namespaces, sweeps it
// from a prober namespace, checks the verdicts against how the fleet was
// built, and removes everything again (also on Ctrl-C).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fleet, FleetSpec } from '../fleet/fleet';
import { mustParseAddress } from '../targets/address';
import { ProbeResult, ProbeState } from '../types';
import { requirePrivileges } from '../privileges';
import { PROBE_STATES } from '../contract.generated';

export const DEMO_FLEET: FleetSpec = {
  tag: 'demo',
  v4: '198.18.0.0/24',
  v6: '2001:2::/120',
  open: [80, 443],
  drop: ['198.18.0.192/27', '2001:2::c0/123'],
  reject: ['198.18.0.224/27', '2001:2::e0/123'],
};
const DEMO_PORTS = '22,80,443';

/**
 * A few seconds of `halfopen serve` on the demo fleet: web2's listener stops
 * (its port answers RST) and comes back; the events show it going down after
 * `fall` failures and up after `rise` successes. True when both were seen.
 */
async function watch(fleet: Fleet, out: NodeJS.WritableStream, track: (c: ReturnType<typeof spawn>) => void, signal: AbortSignal): Promise<boolean> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-demo-'));
  const config = path.join(dir, 'serve.yaml');
  fs.writeFileSync(config, `defaults: { interval: 300ms, timeout: 200ms, fastinter: 100ms, rise: 2, fall: 2, jitter: 0 }
events: "-"
backends:
  - { name: web1, host: 198.18.0.10, port: 80 }
  - { name: web2, host: 198.18.0.11, port: 443 }
  - { name: web6, host: "2001:2::10", port: 80 }
  - { name: dropped, host: 198.18.0.200, port: 80 }
`);
  out.write(`\nwatch: ip netns exec ${fleet.prober} halfopen serve --config ${config}  (rise 2, fall 2, every 300 ms)\n`);
  const child = spawn('ip', ['netns', 'exec', fleet.prober, process.execPath, path.join(__dirname, 'main.js'), 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  const t0 = Date.now();
  const seen = new Set<string>();
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    const e = JSON.parse(line);
    seen.add(`${e.backend} ${e.to}`);
    const n = e.to === 'down' ? e.consecutive.failures : e.consecutive.successes;
    out.write(`  +${((Date.now() - t0) / 1000).toFixed(1)} s  ${e.backend.padEnd(8)} ${e.from} → ${e.to}  (${e.reason}, after ${n} ${e.to === 'down' ? 'failures' : 'successes'})\n`);
  });
  try {
    // Ctrl-C ends the watch at once: the sleeps reject, and the finally below stops serve.
    await sleep(1200, undefined, { signal });
    out.write(`  +${((Date.now() - t0) / 1000).toFixed(1)} s  web2's listener stops (198.18.0.11:443 answers RST)\n`);
    fleet.block('halfopen_demo', '198.18.0.11', 443, 'reset');
    await sleep(1500, undefined, { signal });
    out.write(`  +${((Date.now() - t0) / 1000).toFixed(1)} s  web2's listener is back\n`);
    fleet.unblock('halfopen_demo');
    await sleep(1500, undefined, { signal });
  } catch (err) {
    if (!signal.aborted) throw err;
    return false;
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return seen.has('web2 down') && seen.has('web2 up') && seen.has('dropped down');
}

export async function demo(): Promise<number> {
  requirePrivileges();
  const fleet = await Fleet.create(DEMO_FLEET);
  let child: ReturnType<typeof spawn> | null = null;
  // A signal stops whatever runs, the fleet is removed below, and the demo
  // exits as the shell reports a filter killed by it: 130 (SIGINT), 143 (SIGTERM).
  const stop = new AbortController();
  let interrupted = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = 128 + os.constants.signals[sig];
    child?.kill('SIGINT');
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const out = process.stdout;
    out.write(`fleet: ${DEMO_FLEET.v4} and ${DEMO_FLEET.v6} in namespace ${fleet.fleet}; listeners on ${DEMO_FLEET.open.join(', ')}; ` +
      `dropped ${DEMO_FLEET.drop!.join(', ')}; ICMP-rejected ${DEMO_FLEET.reject!.join(', ')}\n`);
    const args = [path.join(__dirname, 'main.js'), 'sweep', DEMO_FLEET.v4!, DEMO_FLEET.v6!, '-p', DEMO_PORTS,
      '--format', 'ndjson', '--timeout', '500', '--no-progress'];
    out.write(`sweep: ip netns exec ${fleet.prober} halfopen ${args.slice(1).join(' ')}\n\n`);
    const results: ProbeResult[] = [];
    child = spawn('ip', ['netns', 'exec', fleet.prober, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let summary = '';
    child.stderr!.on('data', (d: Buffer) => { summary += d.toString(); });
    readline.createInterface({ input: child.stdout! }).on('line', (line) => { if (line) results.push(JSON.parse(line)); });
    const code: number = await new Promise((resolve) => child!.on('close', (c) => resolve(c ?? 1)));
    if (interrupted) return interrupted;
    if (code !== 0) {
      process.stderr.write(summary);
      return code;
    }

    const byState = new Map<ProbeState, ProbeResult[]>();
    let wrong = 0;
    for (const r of results) {
      if (fleet.truth(mustParseAddress(r.ip), r.port) !== r.state) wrong++;
      byState.set(r.state, [...(byState.get(r.state) ?? []), r]);
    }
    out.write(`${'state'.padEnd(12)}${'probes'.padStart(7)}  example\n`);
    for (const state of PROBE_STATES) {
      const rs = byState.get(state) ?? [];
      const ex = rs[0] ? `${rs[0].ip} port ${rs[0].port} (${rs[0].reason}${rs[0].rtt_ms !== null ? `, ${rs[0].rtt_ms} ms` : ''})` : '';
      out.write(`${state.padEnd(12)}${String(rs.length).padStart(7)}  ${ex}\n`);
    }
    out.write(`\n${summary}`);
    out.write(`ground truth: ${results.length - wrong}/${results.length} verdicts correct\n`);

    const watched = await watch(fleet, out, (c) => { child = c; }, stop.signal);
    if (interrupted) return interrupted;
    const accepted = fleet.acceptedConnections().length;
    const synRecv = fleet.synRecvCount();
    out.write(`\nfleet servers: ${accepted} accepted connections, ${synRecv} half-open (SYN-RECV) sockets left\n`);
    return wrong === 0 && watched && accepted === 0 && synRecv === 0 ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    fleet.remove();
    process.stdout.write(`removed namespaces ${fleet.prober} and ${fleet.fleet}\n`);
  }
}
