// Host names to addresses: the one resolver of halfopen. What differs between
// its users is an option, not another resolver:
//   - followTtl: DNS first (c-ares, which returns each record's TTL, so serve
//     can look a name up again when it expires), then the system resolver
//     (/etc/hosts and other NSS sources, whose answers carry no TTL);
//     without it, the system resolver only, as a sweep's targets and a
//     command-line tool expect;
//   - family: IPv4 or IPv6 addresses only;
//   - deadlineMs: a resolver that hangs (getaddrinfo in libuv's pool cannot be
//     cancelled) costs no more than this: the look-up fails with ETIMEOUT.
// Literal addresses, with or without [brackets], are never looked up.
import dns from 'node:dns';
import { familyOf, parseAddress, type Family } from './address';

export type LookupFn = (
  hostname: string,
  options: { all: true; family: 0 | 4 | 6 },
) => Promise<ReadonlyArray<{ address: string; family: number }>>;

export interface LookupOptions {
  family?: Family;
  followTtl?: boolean;
  /** The TTL given to answers that carry none (the system resolver's), in ms. */
  fallbackTtlMs?: number;
  deadlineMs?: number;
  /** The system resolver; injected for tests. */
  lookup?: LookupFn;
}

/** What a name resolved to: its addresses (empty on failure), how long they hold, and why there are none. */
export interface Lookup { addrs: bigint[]; ttlMs: number; error: string; errno?: number; syscall?: string }

const systemLookup: LookupFn = (hostname, options) => dns.promises.lookup(hostname, options);
const dnsResolver = new dns.promises.Resolver({ timeout: 2000, tries: 2 });

/** An address literal, with or without [brackets], or null. */
export const literal = (host: string): bigint | null => parseAddress(host.replace(/^\[(.*)\]$/, '$1'));

const codeOf = (err: unknown): string => (err as NodeJS.ErrnoException)?.code ?? String((err as Error)?.message ?? err);

/** DNS records of the families asked for, with the shortest TTL among them; null when DNS has none. */
async function fromDns(host: string, family: Family | undefined): Promise<{ addrs: bigint[]; ttlMs: number } | { error: string }> {
  let error = 'ENOTFOUND';
  for (const rr of family === 6 ? ['AAAA'] : family === 4 ? ['A'] : ['A', 'AAAA']) {
    try {
      const recs = rr === 'A' ? await dnsResolver.resolve4(host, { ttl: true }) : await dnsResolver.resolve6(host, { ttl: true });
      const addrs = recs.map((r) => parseAddress(r.address)).filter((a): a is bigint => a !== null);
      if (addrs.length) return { addrs, ttlMs: Math.max(1, Math.min(...recs.map((r) => r.ttl))) * 1000 };
    } catch (err) {
      error = codeOf(err);
    }
  }
  return { error };
}

async function resolveName(host: string, o: LookupOptions): Promise<Lookup> {
  const fallbackTtlMs = o.fallbackTtlMs ?? 30_000;
  let dnsError = '';
  if (o.followTtl) {
    const d = await fromDns(host, o.family);
    if ('addrs' in d) return { ...d, error: '' };
    dnsError = d.error;
  }
  try {
    const found = await (o.lookup ?? systemLookup)(host, { all: true, family: o.family ?? 0 });
    const addrs = found.map((f) => parseAddress(f.address)).filter((a): a is bigint => a !== null && (o.family === undefined || familyOf(a) === o.family));
    if (!addrs.length) return { addrs, ttlMs: fallbackTtlMs, error: o.family ? `no IPv${o.family} addresses` : 'no addresses' };
    return { addrs, ttlMs: fallbackTtlMs, error: '' };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { addrs: [], ttlMs: fallbackTtlMs, error: codeOf(err) || dnsError, errno: e?.errno, syscall: e?.syscall };
  }
}

/** Looks `host` up as the options say. Never throws: a failure is `error` with no addresses. */
export async function lookupHost(host: string, o: LookupOptions = {}): Promise<Lookup> {
  const lit = literal(host);
  if (lit !== null) return { addrs: [lit], ttlMs: Infinity, error: '' };
  if (o.deadlineMs === undefined) return resolveName(host, o);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Lookup>((r) => { timer = setTimeout(() => r({ addrs: [], ttlMs: o.fallbackTtlMs ?? 30_000, error: 'ETIMEOUT' }), o.deadlineMs); });
  try {
    return await Promise.race([resolveName(host, o), late]);
  } finally {
    clearTimeout(timer);
  }
}
