// The default exclusions of a sweep: address blocks that are never a unicast
// host on someone's fleet, from IANA's special-purpose registries. A sweep
// leaves them out unless --no-default-excludes is given, so a typo (a /1
// typed for a /16, 0.0.0.0/0) cannot send SYNs to multicast groups, the
// loopback, link-local neighbours or reserved space.
//
// IPv4 is held IPv4-mapped (::ffff:a.b.c.d, see address.ts), so each IPv4
// row also covers its mapped IPv6 form: ::ffff:127.0.0.1 is excluded as
// 127.0.0.1 is.
import { mustParseAddress, formatAddress, isV4 } from './address';
import { AddrRange, cidrRange, mergeRanges, subtractRanges, rangeSize } from './ranges';

export interface SpecialRange {
  /** The block as written in the registry. */
  cidr: string;
  range: AddrRange;
  /** What the block is, and why no fleet host lives there. */
  reason: string;
  /** The registry entry and the RFC that assigns it. */
  source: string;
}

const V4_REGISTRY = 'IANA IPv4 Special-Purpose Address Registry';
const V6_REGISTRY = 'IANA IPv6 Special-Purpose Address Registry';

function row(cidr: string, reason: string, source: string): SpecialRange {
  const [addr, len] = cidr.split('/');
  const a = mustParseAddress(addr);
  return { cidr, range: cidrRange(a, Number(len), isV4(a) ? 32 : 128), reason, source };
}

/** The table, in address order. docs/sweep.md reproduces it. */
export const DEFAULT_EXCLUSIONS: readonly SpecialRange[] = [
  row('::/128', 'the unspecified address: a source placeholder, never a destination', `${V6_REGISTRY}, RFC 4291 §2.5.2`),
  row('::1/128', 'loopback: the prober itself', `${V6_REGISTRY}, RFC 4291 §2.5.3`),
  row('0.0.0.0/8', '"this network": a source before configuration, not a destination', `${V4_REGISTRY}, RFC 791 §3.2, RFC 1122 §3.2.1.3`),
  row('127.0.0.0/8', 'loopback: the prober itself', `${V4_REGISTRY}, RFC 1122 §3.2.1.3`),
  row('169.254.0.0/16', 'link-local: not routed, neighbours of the prober only', `${V4_REGISTRY}, RFC 3927`),
  row('224.0.0.0/4', 'multicast groups, not hosts: TCP does not run to them', 'IANA IPv4 Multicast Address Space Registry, RFC 5771'),
  row('240.0.0.0/4', 'reserved for future use, with 255.255.255.255 the limited broadcast', `${V4_REGISTRY}, RFC 1112 §4, RFC 919, RFC 8190`),
  row('fe80::/10', 'link-local unicast: not routed, neighbours of the prober only', `${V6_REGISTRY}, RFC 4291 §2.5.6`),
  row('ff00::/8', 'multicast groups, not hosts', 'IANA IPv6 Multicast Address Space Registry, RFC 4291 §2.7'),
];

/** The exclusions as merged ranges, for ProbeSpace's excludes. */
export const DEFAULT_EXCLUDE_RANGES: readonly AddrRange[] = mergeRanges(DEFAULT_EXCLUSIONS.map((r) => r.range));

/** The table row holding `addr`, or null. */
export function specialRangeOf(addr: bigint): SpecialRange | null {
  return DEFAULT_EXCLUSIONS.find((r) => addr >= r.range.lo && addr <= r.range.hi) ?? null;
}

/** Whether every address of `r` is inside the default exclusions. */
export function whollyExcluded(r: AddrRange): boolean {
  return subtractRanges([r], DEFAULT_EXCLUDE_RANGES).length === 0;
}

/** The rows `r` overlaps, each with how many of its addresses it covers. */
export function overlaps(r: AddrRange): { row: SpecialRange; addresses: bigint }[] {
  const out: { row: SpecialRange; addresses: bigint }[] = [];
  for (const row of DEFAULT_EXCLUSIONS) {
    const lo = r.lo > row.range.lo ? r.lo : row.range.lo, hi = r.hi < row.range.hi ? r.hi : row.range.hi;
    if (lo <= hi) out.push({ row, addresses: rangeSize({ lo, hi }) });
  }
  return out;
}

/** "127.0.0.0/8 (loopback: the prober itself)" for the first row holding `addr`. */
export function describeSpecial(addr: bigint): string {
  const r = specialRangeOf(addr);
  return r ? `${r.cidr} (${r.reason})` : formatAddress(addr);
}
