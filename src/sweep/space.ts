// A sweep's probe space, below the command line: what the targets, ports and
// excludes a sweep names turn into (a ProbeSpace), its fingerprint, and the
// keyed, sharded order in which a run walks it. `halfopen merge` rebuilds a
// sweep's space from its recorded command through specOfCommand(), so the
// sweep, its resume and its merge all derive the space in this one place.
import { HalfopenError, usageError } from '../errors';
import type { ProbeSource } from '../engine/sweep-run';
import { parsePorts } from '../targets/ports';
import { parseTargetSpec, readTargetFile, resolveHosts, parseExcludeList, readExcludeFile } from '../targets/target-set';
import { ProbeSpace } from '../targets/probe-space';
import type { AddrRange } from '../targets/ranges';
import { Permutation, shardSlice, Shard } from '../targets/permutation';
import { spaceFingerprint } from './run-record';

/** What a sweep names of its space: the parsed arguments, before DNS and files are read. */
export interface SpaceSpec {
  targets: string[];
  ports?: string;
  inputList?: string;
  exclude?: string[];
  excludeFile?: string[];
}

/** A space built from a SpaceSpec, with what its run record and checkpoint say of it. */
export interface SweepSpace {
  space: ProbeSpace;
  /** The user's excludes as given (the fingerprint covers them). */
  excludes: AddrRange[];
  fingerprint: string;
}

/** Builds the probe space of a sweep: reads -iL and exclude files, resolves host names. */
export async function buildSpace(spec: SpaceSpec): Promise<SweepSpace> {
  const specs = [...spec.targets];
  if (spec.inputList) specs.push(...readTargetFile(spec.inputList));
  if (!specs.length) throw usageError('no targets: give TARGET… or -iL FILE');
  const parsed = specs.map(parseTargetSpec);
  const needsPorts = parsed.some((p) => p.kind === 'range' || (p.kind === 'host' && p.port === undefined));
  if (needsPorts && !spec.ports) throw usageError('no ports: give -p PORTS (e.g. -p 80,443) or host:port targets');
  const ports = spec.ports ? parsePorts(spec.ports) : [];
  const { ranges, pairs } = await resolveHosts(parsed);
  const excludes: AddrRange[] = [];
  for (const e of spec.exclude ?? []) excludes.push(...parseExcludeList(e));
  for (const f of spec.excludeFile ?? []) excludes.push(...readExcludeFile(f));
  const space = new ProbeSpace({ ranges, ports, pairs, excludes });
  return { space, excludes, fingerprint: sweepFingerprint(space, excludes) };
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
  };
}

/** The source from entry `start` on: a resumed run continues the order where its checkpoint stood. */
export function fromPosition(whole: ProbeSource, start: number): ProbeSource {
  if (start === 0) return whole;
  return {
    size: whole.size - start,
    at: (i) => whole.at(start + i),
    writeTo: (table, slot, i, sport) => whole.writeTo(table, slot, start + i, sport),
  };
}

/**
 * Options of `halfopen sweep` that take no value. specOfCommand() must know
 * them to tell a flag's value from a target; test/unit/sweep-space.test.ts
 * checks this list against the command's definition.
 */
export const SWEEP_BOOLEAN_FLAGS: readonly string[] = ['--open', '--progress', '--no-progress', '--dry-run'];

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
