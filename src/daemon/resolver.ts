// Backends named by host name: looked up at start and again every
// resolve_interval, or sooner when the DNS record's TTL is shorter. A name
// with no address makes only its backend down (reason unresolved), never the
// daemon. DNS answers come with their TTL (c-ares); names DNS does not know
// (/etc/hosts, other NSS sources) fall back to the system resolver.
import dns from 'node:dns';
import { parseAddress } from '../targets/address';

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
