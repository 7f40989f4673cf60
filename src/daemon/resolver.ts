// Backends named by host name: looked up at start and again every
// resolve_interval, or sooner when the DNS record's TTL is shorter. A name
// with no address makes only its backend down (reason unresolved), never the
// daemon. DNS answers come with their TTL (c-ares); names DNS does not know
// (/etc/hosts, other NSS sources) fall back to the system resolver.
import dns from 'node:dns';
import { formatAddress, parseAddress } from '../targets/address';
import type { BackendConfig } from './config';
import type { Monitor } from './monitor';

/** Host names looked up at once by the refresher. */
const RESOLVE_CONCURRENCY = 16;

/** A backend and what its host resolved to at the latest look-up. */
export interface ResolvedBackend { cfg: BackendConfig; addr: bigint | null; unresolved: string; ttlMs: number }

export interface Resolved { addr: bigint | null; ttlMs: number; error: string }

const resolver = new dns.promises.Resolver({ timeout: 2000, tries: 2 });

/** An address literal, with or without [brackets], or null. */
export const literal = (host: string): bigint | null => parseAddress(host.replace(/^\[(.*)\]$/, '$1'));

/** Looks `host` up: the first A record (else AAAA) and its TTL, else the system resolver. */
export async function resolveHost(host: string, fallbackTtlMs: number): Promise<Resolved> {
  const lit = literal(host);
  if (lit !== null) return { addr: lit, ttlMs: Infinity, error: '' };
  let dnsError = '';
  for (const rr of ['A', 'AAAA'] as const) {
    try {
      const recs = rr === 'A' ? await resolver.resolve4(host, { ttl: true }) : await resolver.resolve6(host, { ttl: true });
      if (recs.length) return { addr: parseAddress(recs[0].address), ttlMs: Math.max(1, recs[0].ttl) * 1000, error: '' };
    } catch (err) {
      dnsError = (err as NodeJS.ErrnoException).code ?? String(err);
    }
  }
  try {
    const r = await dns.promises.lookup(host);
    return { addr: parseAddress(r.address), ttlMs: fallbackTtlMs, error: '' };
  } catch (err) {
    return { addr: null, ttlMs: fallbackTtlMs, error: (err as NodeJS.ErrnoException).code ?? dnsError ?? String(err) };
  }
}

/**
 * Looks host names up again when due: every resolve_interval, or at the
 * record's TTL when that is shorter. An address change moves the backend to
 * the new address with its history; no address makes it down (unresolved).
 */
export class Refresher {
  private due = new Map<string, number>();
  private busy = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly monitor: Monitor, private readonly configs: () => BackendConfig[], private readonly log: (m: string) => void) {}

  /** Schedules every named backend of `list` from its first look-up. */
  plan(list: ResolvedBackend[], now = Date.now()): void {
    const next = new Map<string, number>();
    for (const r of list) {
      if (literal(r.cfg.host) !== null) continue;
      next.set(r.cfg.name, this.due.get(r.cfg.name) ?? now + Math.min(r.cfg.resolveInterval, r.ttlMs));
    }
    this.due = next;
  }

  start(): void { this.timer = setInterval(() => this.run(), 1000); this.timer.unref(); }
  stop(): void { if (this.timer) clearInterval(this.timer); this.timer = null; }

  private run(now = Date.now()): void {
    if (!this.due.size) return; // no backend named by host name
    const byName = new Map(this.configs().map((c) => [c.name, c]));
    for (const [name, at] of this.due) {
      if (at > now || this.busy >= RESOLVE_CONCURRENCY) continue;
      const c = byName.get(name);
      if (!c) { this.due.delete(name); continue; }
      this.busy++;
      this.due.set(name, Infinity);
      void resolveHost(c.host, c.resolveInterval).then((r) => {
        this.busy--;
        if (!this.due.has(name)) return; // removed by a reload meanwhile
        this.due.set(name, Date.now() + Math.min(c.resolveInterval, r.ttlMs));
        const b = this.monitor.get(name);
        if (!b || b.cfg.host !== c.host) return;
        if (b.addr !== r.addr) this.log(`backend ${name}: ${c.host} ${r.addr === null ? `no longer resolves (${r.error})` : `now resolves to ${formatAddress(r.addr)}`}${b.addr === null ? '' : ` (was ${b.address})`}`);
        this.monitor.setAddress(name, r.addr, r.addr === null ? `${c.host}: ${r.error}` : '');
      });
    }
  }
}
