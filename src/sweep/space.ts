// A sweep's probe space, below the command line: what the targets, ports and
// excludes a sweep names turn into (a ProbeSpace), its fingerprint, and the
// keyed, sharded order in which a run walks it. `halfopen merge` rebuilds a
// sweep's space from its recorded command through specOfCommand(), so the
// sweep, its resume and its merge all derive the space in this one place.
import { HalfopenError, usageError } from '../errors';
import type { ProbeSource } from '../engine/sweep-run';
import { parsePorts } from '../targets/ports';
import { parseTargetSpec, readTargetFile, resolveHosts, parseExcludeList, readExcludeFile } from '../targets/target-set';
import { ProbeSpace, planSpace, SpacePlan } from '../targets/probe-space';
import { AddrRange, findRange } from '../targets/ranges';
import { DEFAULT_EXCLUDE_RANGES, SpecialRange, describeSpecial, overlaps, whollyExcluded } from '../targets/special-ranges';
import { Permutation, shardSlice, Shard } from '../targets/permutation';
import { spaceFingerprint } from './run-record';

/** What a sweep names of its space: the parsed arguments, before DNS and files are read. */
export interface SpaceSpec {
  targets: string[];
  ports?: string;
  inputList?: string;
  exclude?: string[];
  excludeFile?: string[];
  /** Leave out the special-purpose blocks (targets/special-ranges.ts); false with --no-default-excludes. */
  defaultExcludes?: boolean;
  /** Sweep more than LARGE_SWEEP addresses (--allow-large). */
  allowLarge?: boolean;
}

/** More addresses than this (after excludes) and a sweep refuses to start without --allow-large. */
export const LARGE_SWEEP = 2 ** 24;

/** A space built from a SpaceSpec, with what its run record and checkpoint say of it. */
export interface SweepSpace {
  space: ProbeSpace;
  /** The user's excludes as given (the fingerprint covers them). */
  excludes: AddrRange[];
  fingerprint: string;
  /** Addresses probed (range addresses and the distinct addresses of pairs), after every exclude. */
  addresses: bigint;
  /** Probes the default exclusions took out (after the user's excludes), and the rows that did it. */
  excludedByDefault: bigint;
  excludedRows: { row: SpecialRange; addresses: bigint }[];
}

/**
 * Builds the probe space of a sweep: reads -iL and exclude files, resolves
 * host names, leaves out the default exclusions and applies the size guard.
 * A target wholly inside the default exclusions, or a sweep left with
 * nothing, or one too large without allowLarge, is a one-line usage error.
 */
export async function buildSpace(spec: SpaceSpec): Promise<SweepSpace> {
  const specs = [...spec.targets];
  if (spec.inputList) specs.push(...readTargetFile(spec.inputList));
  if (!specs.length) throw usageError('no targets: give TARGET… or -iL FILE');
  const parsed = specs.map(parseTargetSpec);
  const needsPorts = parsed.some((p) => p.kind === 'range' || (p.kind === 'host' && p.port === undefined));
  if (needsPorts && !spec.ports) throw usageError('no ports: give -p PORTS (e.g. -p 80,443) or host:port targets');
  const defaults = spec.defaultExcludes !== false;
  if (defaults) {
    parsed.forEach((p, i) => {
      const r = p.kind === 'range' ? p.range : p.kind === 'pair' ? { lo: p.addr, hi: p.addr } : null;
      if (r && whollyExcluded(r)) throw usageError(`target "${specs[i]}" is inside the default exclusions, ${describeSpecial(r.lo)}: give --no-default-excludes to probe it`);
    });
  }
  const ports = spec.ports ? parsePorts(spec.ports) : [];
  const { ranges, pairs } = await resolveHosts(parsed);
  const excludes: AddrRange[] = [];
  for (const e of spec.exclude ?? []) excludes.push(...parseExcludeList(e));
  for (const f of spec.excludeFile ?? []) excludes.push(...readExcludeFile(f));
  const input = { ranges, ports, pairs, excludes };
  const asked = planSpace(input);
  const all = defaults ? [...excludes, ...DEFAULT_EXCLUDE_RANGES] : excludes;
  const kept = defaults ? planSpace({ ...input, excludes: all }) : asked;
  const excludedByDefault = asked.total - kept.total;
  if (kept.total === 0n && excludedByDefault > 0n)
    throw usageError(`no targets left: the default exclusions took all ${excludedByDefault} probes (${describeSpecial(asked.ranges[0]?.lo ?? asked.pairs[0].addr)}): give --no-default-excludes to probe them`);
  const addresses = addressCount(kept);
  if (addresses > BigInt(LARGE_SWEEP) && !spec.allowLarge)
    throw usageError(`the sweep covers ${addresses} addresses, more than 2^24 (${LARGE_SWEEP}): check the targets, or give --allow-large to sweep that many`);
  const space = new ProbeSpace({ ranges, ports, pairs, excludes: all });
  return {
    space, excludes, fingerprint: sweepFingerprint(space, excludes), addresses, excludedByDefault,
    excludedRows: defaults ? excludedRows(asked) : [],
  };
}

/** Range addresses plus the distinct addresses of pairs the ranges do not hold. */
function addressCount(plan: SpacePlan): bigint {
  const extra = new Set<bigint>();
  for (const p of plan.pairs) if (findRange(plan.ranges, p.addr) < 0) extra.add(p.addr);
  return plan.addresses + BigInt(extra.size);
}

/** Per row of the default exclusions, the addresses of `plan` (before them) it took out. */
function excludedRows(plan: SpacePlan): { row: SpecialRange; addresses: bigint }[] {
  const by = new Map<SpecialRange, bigint>();
  const add = (o: { row: SpecialRange; addresses: bigint }) => by.set(o.row, (by.get(o.row) ?? 0n) + o.addresses);
  for (const r of plan.ranges) overlaps(r).forEach(add);
  const seen = new Set<bigint>();
  for (const p of plan.pairs) if (!seen.has(p.addr)) { seen.add(p.addr); overlaps({ lo: p.addr, hi: p.addr }).forEach(add); }
  return [...by].map(([row, addresses]) => ({ row, addresses }));
}

/**
 * The run record's (and checkpoint's) fingerprint of a sweep's space: ranges,
 * pairs and ports after parsing, and the excludes as given; seed and shard do
 * not change it, so every shard of a sweep has the same one.
 */
export function sweepFingerprint(space: ProbeSpace, excludes: readonly AddrRange[]): string {
  return spaceFingerprint({ ranges: space.ranges, pairs: space.pairs, ports: space.ports, excludes });
}

/** The shard's slice of the keyed permutation of the space, as a ProbeSource. */
export function orderedSource(space: ProbeSpace, seed: bigint, shard?: Shard): ProbeSource {
  const perm = new Permutation(space.size, seed);
  const slice = shard ? shardSlice(space.size, shard) : { first: 0, step: 1, count: space.size };
  if (slice.count === 0) throw new HalfopenError('E_EMPTY', `shard ${shard!.index}/${shard!.count} is empty: the sweep has only ${space.size} probes`);
  const { first, step } = slice;
  return {
    size: slice.count,
    at: (i) => space.at(perm.at(first + i * step)),
    writeTo: (table, slot, i, sport) => space.writeTo(table, slot, perm.at(first + i * step), sport),
    position: (i) => first + i * step,
  };
}

/** The source from entry `start` on: a resumed run continues the order where its checkpoint stood. */
export function fromPosition(whole: ProbeSource, start: number): ProbeSource {
  if (start === 0) return whole;
  return {
    size: whole.size - start,
    at: (i) => whole.at(start + i),
    writeTo: (table, slot, i, sport) => whole.writeTo(table, slot, start + i, sport),
    position: whole.position ? (i) => whole.position!(start + i) : undefined,
  };
}

/**
 * Options of `halfopen sweep` that take no value. specOfCommand() must know
 * them to tell a flag's value from a target; test/unit/sweep-space.test.ts
 * checks this list against the command's definition.
 */
export const SWEEP_BOOLEAN_FLAGS: readonly string[] = ['--open', '--progress', '--no-progress', '--dry-run', '--no-default-excludes', '--allow-large'];

/**
 * The SpaceSpec of a recorded `sweep …` command line (a run record's or a
 * checkpoint's `command`). Reads only the flags that shape the space; the
 * others are skipped with their values. Throws E_MERGE-free usage errors: the
 * caller names the record.
 */
export function specOfCommand(command: readonly string[]): SpaceSpec {
  const args = command.map((a) => (a === '-iL' ? '--input-list' : a));
  if (args[0] !== 'sweep') throw usageError('not a sweep');
  const spec: SpaceSpec = { targets: [] };
  const lists: Record<string, string[]> = { '--exclude': [], '--exclude-file': [] };
  for (let i = 1; i < args.length; i++) {
    const a = args[i];
    if (a === '--') { spec.targets.push(...args.slice(i + 1)); break; }
    if (!a.startsWith('-') || a === '-') { spec.targets.push(a); continue; }
    const eq = a.indexOf('=');
    const long = a.startsWith('--');
    // -pVALUE, --flag=VALUE, or the value in the next argument.
    const flag = long ? (eq > 0 ? a.slice(0, eq) : a) : a.slice(0, 2);
    if (flag === '--no-default-excludes') spec.defaultExcludes = false;
    if (flag === '--allow-large') spec.allowLarge = true;
    if (SWEEP_BOOLEAN_FLAGS.includes(flag)) continue;
    let value: string | undefined = long ? (eq > 0 ? a.slice(eq + 1) : undefined) : a.length > 2 ? a.slice(2) : undefined;
    if (value === undefined) {
      if (i + 1 >= args.length) throw usageError(`option ${flag} has no value`);
      value = args[++i];
    }
    if (flag === '-p' || flag === '--ports') spec.ports = value;
    else if (flag === '--input-list') spec.inputList = value;
    else if (flag in lists) lists[flag].push(value);
  }
  if (lists['--exclude'].length) spec.exclude = lists['--exclude'];
  if (lists['--exclude-file'].length) spec.excludeFile = lists['--exclude-file'];
  return spec;
}
