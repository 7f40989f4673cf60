// Several source addresses per sweep (`--source-ip LIST|RANGE`, per family):
// fleets behind per-source SYN limits, or a prober with a pool of addresses.
// A probe's source is a function of its position in the seed's keyed order
// (permutation.ts), not of the run that sends it: the probe at position p of
// the order leaves from the family's address number p mod K. A shard, a
// resumed run and a merge therefore agree on every probe's source, and
// consecutive probes of the order (which go out together) rotate over the
// addresses.
import { usageError } from '../errors';
import { formatAddress, isV4 } from '../targets/address';
import { parseExcludeSpec } from '../targets/target-set';
import { rangeSize } from '../targets/ranges';

/** Send groups the sender can hold; the number of groups is lcm(K4, K6). */
export const MAX_SOURCE_GROUPS = 1024;

export interface SourceAddresses { v4: string[]; v6: string[] }

/** `--source-ip` values: each an address, a range a-b (or a.b.c.d-N) or a CIDR, comma-separated, repeatable. */
export function parseSourceList(values: readonly string[]): SourceAddresses {
  const out: SourceAddresses = { v4: [], v6: [] };
  const seen = new Set<bigint>();
  for (const value of values) {
    for (const item of value.split(',')) {
      let r;
      try { r = parseExcludeSpec(item); } catch { throw usageError(`invalid --source-ip "${item}": expected an address, a range a-b or a CIDR, comma-separated`); }
      if (rangeSize(r) > BigInt(MAX_SOURCE_GROUPS)) throw usageError(`invalid --source-ip "${item}": more than ${MAX_SOURCE_GROUPS} addresses`);
      for (let a = r.lo; a <= r.hi; a++) {
        if (seen.has(a)) continue;
        seen.add(a);
        (isV4(a) ? out.v4 : out.v6).push(formatAddress(a));
      }
    }
  }
  if (groupCount(out) > MAX_SOURCE_GROUPS)
    throw usageError(`--source-ip: ${out.v4.length} IPv4 and ${out.v6.length} IPv6 sources need ${groupCount(out)} send groups, more than ${MAX_SOURCE_GROUPS}: give fewer, or counts with a common factor`);
  return out;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** Send groups for these sources: lcm of the per-family counts (a family without sources counts 1). */
export function groupCount(s: SourceAddresses): number {
  const a = Math.max(1, s.v4.length), b = Math.max(1, s.v6.length);
  return (a / gcd(a, b)) * b;
}

/** Whether the sweep needs send groups (more than one source in a family). */
export const isMultiSource = (s: SourceAddresses): boolean => s.v4.length > 1 || s.v6.length > 1;

/** The group (0-based) of the probe at position p of the order; its source is the group's address of the probe's family. */
export const groupOfPosition = (p: number, groups: number): number => p % groups;

/** The source of a probe at position p: the family's address p mod K (what groupOfPosition gives, seen per family). */
export function sourceOfPosition(s: SourceAddresses, v4: boolean, p: number): string | undefined {
  const list = v4 ? s.v4 : s.v6;
  return list.length ? list[p % list.length] : undefined;
}
