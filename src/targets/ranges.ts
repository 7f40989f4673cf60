// Interval arithmetic over the 128-bit address space. Target sets are kept as
// sorted, disjoint, non-adjacent inclusive intervals so that a /8 or a /64 costs
// one element, never one per address.

import { V4_MAX, V4_MIN } from './address';

/** Inclusive address interval; after normalisation both ends are in one family. */
export interface AddrRange { lo: bigint; hi: bigint }

export const rangeSize = (r: AddrRange): bigint => r.hi - r.lo + 1n;

/** Network containing `addr` with a prefix of `prefix` bits out of `bits` (32 for IPv4 text, 128 for IPv6). */
export function cidrRange(addr: bigint, prefix: number, bits: 32 | 128): AddrRange {
  const hostBits = BigInt(bits - prefix);
  const hostMask = (1n << hostBits) - 1n;
  const lo = addr & ~hostMask;
  return { lo, hi: lo | hostMask };
}

/** Sorted union; overlapping and adjacent intervals coalesce. Input is not modified. */
export function mergeRanges(ranges: readonly AddrRange[]): AddrRange[] {
  const sorted = ranges.map((r) => ({ lo: r.lo, hi: r.hi })).sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  const out: AddrRange[] = [];
  for (const r of sorted) {
    const top = out[out.length - 1];
    if (top !== undefined && r.lo <= top.hi + 1n) {
      if (r.hi > top.hi) top.hi = r.hi;
    } else {
      out.push(r);
    }
  }
  return out;
}

/** `ranges` minus `holes`; both must be merged (sorted, disjoint). Linear sweep. */
export function subtractRanges(ranges: readonly AddrRange[], holes: readonly AddrRange[]): AddrRange[] {
  const out: AddrRange[] = [];
  let h = 0;
  for (const r of ranges) {
    let lo = r.lo;
    while (h < holes.length && holes[h].hi < lo) h++;
    // Holes may span several ranges, so `h` is not advanced past one that reaches beyond r.hi.
    let k = h;
    while (k < holes.length && holes[k].lo <= r.hi) {
      const hole = holes[k];
      if (hole.lo > lo) out.push({ lo, hi: hole.lo - 1n });
      if (hole.hi >= r.hi) { lo = r.hi + 1n; break; }
      lo = hole.hi + 1n;
      k++;
    }
    if (lo <= r.hi) out.push({ lo, hi: r.hi });
  }
  return out;
}

/** Cuts merged ranges at the edges of the IPv4-mapped block so each piece has one family. */
export function splitByFamily(ranges: readonly AddrRange[]): AddrRange[] {
  const out: AddrRange[] = [];
  for (const r of ranges) {
    let lo = r.lo;
    if (lo < V4_MIN && r.hi >= V4_MIN) { out.push({ lo, hi: V4_BELOW }); lo = V4_MIN; }
    if (lo <= V4_MAX && r.hi > V4_MAX) { out.push({ lo, hi: V4_MAX }); lo = V4_ABOVE; }
    out.push({ lo, hi: r.hi });
  }
  return out;
}

const V4_BELOW = V4_MIN - 1n;
const V4_ABOVE = V4_MAX + 1n;

/** Index of the merged range holding `addr`, or -1. */
export function findRange(ranges: readonly AddrRange[], addr: bigint): number {
  let a = 0, b = ranges.length - 1;
  while (a <= b) {
    const m = (a + b) >>> 1;
    const r = ranges[m];
    if (addr < r.lo) b = m - 1;
    else if (addr > r.hi) a = m + 1;
    else return m;
  }
  return -1;
}
