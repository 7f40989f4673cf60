// Where probes leave from: interface, source address and next-hop MAC, as the
// kernel's routing table says (`ip route get`), so XDP attaches to the
// interface the replies will arrive on.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { HalfopenError } from '../errors';

/** Distinct (source, mark) pairs one engine sends from; each is a socket pair per sender thread. */
export const MAX_SEND_GROUPS = 1024;

export interface Route {
  dev: string;
  ifindex: number;
  /** Source address the kernel would use (or --source-ip). */
  src: string;
  /** Next hop: the gateway, or the target itself when on-link. */
  via: string;
  /** MAC of the interface, null for interfaces without one. */
  mac: string | null;
}

function ip(args: string[]): unknown {
  try {
    return JSON.parse(execFileSync('ip', ['-j', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) || 'null');
  } catch (err) {
    const msg = String((err as { stderr?: string }).stderr ?? (err as Error).message).trim().split('\n')[0];
    throw new HalfopenError('E_INTERFACE', `ip ${args.join(' ')}: ${msg}`);
  }
}

export function interfaceIndex(dev: string): number {
  try {
    return Number(fs.readFileSync(`/sys/class/net/${dev}/ifindex`, 'utf8').trim());
  } catch {
    throw new HalfopenError('E_INTERFACE', `unknown interface "${dev}": expected one of ${listInterfaces().join(', ')}`);
  }
}

export function listInterfaces(): string[] {
  try { return fs.readdirSync('/sys/class/net'); } catch { return []; }
}

function interfaceMac(dev: string): string | null {
  try {
    const mac = fs.readFileSync(`/sys/class/net/${dev}/address`, 'utf8').trim();
    return mac && mac !== '00:00:00:00:00:00' ? mac : null;
  } catch { return null; }
}

/** Route to `target`, optionally forced through `dev`, from `src` and for packets marked `mark` (policy routing). */
export function routeTo(target: string, opts: { dev?: string; src?: string; mark?: number } = {}): Route {
  if (opts.dev) interfaceIndex(opts.dev); // fail early with the list of interfaces
  const args = ['route', 'get', target];
  if (opts.dev) args.push('oif', opts.dev);
  if (opts.src) args.push('from', opts.src);
  if (opts.mark) args.push('mark', String(opts.mark));
  const r = (ip(args) as Array<{ dev?: string; prefsrc?: string; gateway?: string; type?: string }>)?.[0];
  if (!r || !r.dev) throw new HalfopenError('E_INTERFACE', `no route to ${target}`);
  if (r.type && r.type !== 'unicast') throw new HalfopenError('E_INTERFACE', `${target} is a ${r.type} address, not a unicast target`);
  if (r.dev === 'lo') throw new HalfopenError('E_INTERFACE', `${target} is local to this host: half-open probes need a target behind an interface`);
  const src = opts.src ?? r.prefsrc;
  if (!src) throw new HalfopenError('E_INTERFACE', `no source address for ${target} on ${r.dev}: pass --source-ip`);
  return { dev: r.dev, ifindex: interfaceIndex(r.dev), src, via: r.gateway ?? target, mac: interfaceMac(r.dev) };
}

/** The next hop's MAC if the neighbour table has a usable entry, else null. */
export function neighbourMac(route: Route): string | null {
  const rows = ip(['neigh', 'show', 'to', route.via, 'dev', route.dev]) as Array<{ lladdr?: string; state?: string[] }> | null;
  const row = rows?.find((n) => n.lladdr && !(n.state ?? []).some((s) => s === 'FAILED' || s === 'INCOMPLETE'));
  return row?.lladdr ?? null;
}

export const macBytes = (mac: string): Buffer => Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
