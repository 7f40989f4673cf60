// `halfopen demo`: builds a throwaway fleet in network namespaces, sweeps it
// from a prober namespace, checks the verdicts against how the fleet was
// built, and removes everything again (also on Ctrl-C).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Fleet, FleetSpec } from '../fleet/fleet';
import { mustParseAddress } from '../targets/address';
import { ProbeResult, ProbeState } from '../types';
import { requirePrivileges } from './privileges';

export const DEMO_FLEET: FleetSpec = {
  tag: 'demo',
  v4: '198.18.0.0/24',
  v6: '2001:2::/120',
  open: [80, 443],
  drop: ['198.18.0.192/27', '2001:2::c0/123'],
  reject: ['198.18.0.224/27', '2001:2::e0/123'],
};
const DEMO_PORTS = '22,80,443';

export async function demo(): Promise<number> {
  requirePrivileges();
  const fleet = await Fleet.create(DEMO_FLEET);
  let child: ReturnType<typeof spawn> | null = null;
  const onSignal = () => { child?.kill('SIGINT'); };
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
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line) results.push(JSON.parse(line));
      }
    });
    const code: number = await new Promise((resolve) => child!.on('close', (c) => resolve(c ?? 1)));
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
    for (const state of ['open', 'closed', 'filtered', 'unreachable'] as ProbeState[]) {
      const rs = byState.get(state) ?? [];
      const ex = rs[0] ? `${rs[0].ip} port ${rs[0].port} (${rs[0].reason}${rs[0].rtt_ms !== null ? `, ${rs[0].rtt_ms} ms` : ''})` : '';
      out.write(`${state.padEnd(12)}${String(rs.length).padStart(7)}  ${ex}\n`);
    }
    const accepted = fleet.acceptedConnections().length;
    const synRecv = fleet.synRecvCount();
    out.write(`\n${summary}`);
    out.write(`ground truth: ${results.length - wrong}/${results.length} verdicts correct\n`);
    out.write(`fleet servers: ${accepted} accepted connections, ${synRecv} half-open (SYN-RECV) sockets left\n`);
    return wrong === 0 && accepted === 0 && synRecv === 0 ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    fleet.remove();
    process.stdout.write(`removed namespaces ${fleet.prober} and ${fleet.fleet}\n`);
  }
}
