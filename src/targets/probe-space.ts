// The probe space is a lazily indexed list of (address, port) probes. Nothing
// is enumerated: merged address intervals × the port list, then explicit pairs.
//
// Order (what at(i) returns for ascending i):
//   1. Range probes, address-major: addresses ascending over the merged ranges
//      (so IPv6 below ::ffff:0:0/96, then IPv4, then the rest of IPv6), and for
//      each address every port ascending. i → address index ⌊i/P⌋, port i mod P.
//   2. Explicit pairs not already covered by ranges × ports, sorted by (address, port).
// The scan order is decided by Permutation on top of this, so this order only
// has to be stable and cheap to index.
//
// A space rebuilt from another one's `ranges`, `ports` and `pairs` is identical,
// which is how it crosses worker-thread boundaries (bigints clone, classes don't).

import { HalfopenError, targetError } from '../errors';
import { ADDR_MAX, familyOf, Family, formatAddress, isV4, v4ToNumber } from './address';
import { PORT_MAX, PORT_MIN, isPort } from './ports';
import { AddrRange, findRange, mergeRanges, rangeSize, splitByFamily, subtractRanges } from './ranges';

export interface AddrPort { addr: bigint; port: number }

/** Where probes are written (the engine's probe table): IPv4 as a 32-bit number, anything else as a bigint. */
export interface ProbeSink {
  setV4(slot: number, a: number, port: number, sport: number): void;
  set(slot: number, addr: bigint, port: number, sport: number): void;
}

export interface ProbeSpaceInput {
  ranges?: readonly AddrRange[];
  ports?: readonly number[];
  pairs?: readonly AddrPort[];
  excludes?: readonly AddrRange[];
}

/** Largest space whose indices are all exact in a double. */
export const MAX_PROBES = 2 ** 53;

const cmpPair = (a: AddrPort, b: AddrPort): number => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : a.port - b.port);

/** A space's parts after merging, excludes and dedupe, with its size: what ProbeSpace is built on. */
export interface SpacePlan {
  ranges: AddrRange[];
  ports: number[];
  pairs: AddrPort[];
  portSet: Uint8Array;
  /** Addresses in `ranges`. */
  addresses: bigint;
  /** Probes: addresses × ports + pairs. */
  total: bigint;
}

/**
 * Merges the ranges, takes out the excludes, drops the pairs the ranges
 * already cover, and counts, without the limits ProbeSpace enforces: a plan
 * can be as large as the whole address space (a sweep's size guard and its
 * count of default exclusions are differences of two plans).
 */
export function planSpace(input: ProbeSpaceInput): SpacePlan {
  const inRanges = input.ranges ?? [];
  const inPairs = input.pairs ?? [];
  if (inRanges.length === 0 && inPairs.length === 0) throw new HalfopenError('E_EMPTY', 'no targets given');
  const portSet = new Uint8Array(PORT_MAX + 1);
  for (const p of input.ports ?? []) {
    if (!isPort(p)) throw targetError(`invalid port ${p}: expected 1-65535`);
    portSet[p] = 1;
  }
  const ports: number[] = [];
  for (let p = PORT_MIN; p <= PORT_MAX; p++) if (portSet[p]) ports.push(p);
  if (inRanges.length > 0 && ports.length === 0) throw targetError('address targets given without any port to probe');
  for (const r of inRanges) {
    if (r.lo < 0n || r.hi > ADDR_MAX) throw new RangeError(`address range outside the 128-bit space: ${r.lo}-${r.hi}`);
    if (r.lo > r.hi) throw targetError(`invalid range ${formatAddress(r.lo)}-${formatAddress(r.hi)}: start is greater than end`);
  }
  const holes = mergeRanges(input.excludes ?? []);
  const ranges = splitByFamily(subtractRanges(mergeRanges(inRanges), holes));
  const pairs: AddrPort[] = [];
  for (const p of inPairs.map((q) => ({ addr: q.addr, port: q.port })).sort(cmpPair)) {
    if (!isPort(p.port)) throw targetError(`invalid port ${p.port} for ${formatAddress(p.addr)}: expected 1-65535`);
    const prev = pairs[pairs.length - 1];
    if (prev !== undefined && prev.addr === p.addr && prev.port === p.port) continue;
    if (findRange(holes, p.addr) >= 0) continue;
    if (portSet[p.port] && findRange(ranges, p.addr) >= 0) continue;
    pairs.push(p);
  }
  let addresses = 0n;
  for (const r of ranges) addresses += rangeSize(r);
  return { ranges, ports, pairs, portSet, addresses, total: addresses * BigInt(ports.length) + BigInt(pairs.length) };
}

export class ProbeSpace {
  /** Total number of probes. */
  readonly size: number;
  /** Probes contributed by ranges × ports; indices below this are range probes. */
  readonly rangeProbes: number;
  /** Addresses covered by `ranges`. */
  readonly addressCount: number;
  readonly families: Set<Family>;
  /** Merged, excluded, single-family ranges, ascending. */
  readonly ranges: readonly AddrRange[];
  readonly ports: readonly number[];
  /** Explicit pairs left after dedupe, excludes and range coverage, ascending. */
  readonly pairs: readonly AddrPort[];

  // First address index of each range, for the binary search in at().
  private readonly starts: Float64Array;
  // Each range's first address as a 32-bit number if it is IPv4, else -1 (writeTo's bigint-free path).
  private readonly lo4: Float64Array;
  private readonly portSet: Uint8Array;

  constructor(input: ProbeSpaceInput) {
    const plan = planSpace(input);
    const { ranges, ports, pairs, total } = plan;
    if (total === 0n) throw new HalfopenError('E_EMPTY', 'no targets left after excludes');
    if (total > BigInt(MAX_PROBES)) {
      throw targetError(`target space too large: ${total} probes exceeds the limit of 2^53; narrow the targets or ports, or add excludes`);
    }
    this.portSet = plan.portSet;
    this.ports = ports;
    this.ranges = ranges;
    this.pairs = pairs;
    let addrs = 0n;
    this.starts = new Float64Array(ranges.length);
    this.lo4 = new Float64Array(ranges.length);
    for (let k = 0; k < ranges.length; k++) {
      this.lo4[k] = isV4(ranges[k].lo) ? v4ToNumber(ranges[k].lo) : -1;
      // Exact: the space passed the 2^53 check above.
      this.starts[k] = Number(addrs);
      addrs += rangeSize(ranges[k]);
    }
    this.addressCount = Number(addrs);
    this.rangeProbes = this.addressCount * ports.length;
    this.size = Number(total);

    const fams = new Set<Family>();
    for (const r of ranges) fams.add(familyOf(r.lo));
    for (const p of pairs) fams.add(familyOf(p.addr));
    this.families = fams;
  }

  /** Probe number i, 0 <= i < size, in O(log R). */
  at(i: number): AddrPort {
    this.check(i);
    if (i >= this.rangeProbes) {
      const p = this.pairs[i - this.rangeProbes];
      return { addr: p.addr, port: p.port };
    }
    const P = this.ports.length;
    // % is exact on doubles, and (i - r) / P divides an exact multiple, so this
    // stays exact up to 2^53 where Math.floor(i / P) would not.
    const r = i % P;
    const a = (i - r) / P;
    const k = this.rangeOf(a);
    const off = a - this.starts[k];
    // Skipping the bigint add matters when ranges are many single hosts.
    return { addr: off === 0 ? this.ranges[k].lo : this.ranges[k].lo + BigInt(off), port: this.ports[r] };
  }

  /**
   * Writes probe i to `sink` at `slot` with source port `sport`: at() without
   * the object, and without bigints for IPv4 ranges, which is what a sweep
   * fills its probe table with.
   */
  writeTo(sink: ProbeSink, slot: number, i: number, sport: number): void {
    this.check(i);
    if (i >= this.rangeProbes) {
      const p = this.pairs[i - this.rangeProbes];
      sink.set(slot, p.addr, p.port, sport);
      return;
    }
    const P = this.ports.length;
    const r = i % P;
    const a = (i - r) / P;
    const k = this.rangeOf(a);
    const off = a - this.starts[k];
    const lo4 = this.lo4[k];
    if (lo4 >= 0) sink.setV4(slot, lo4 + off, this.ports[r], sport);
    else sink.set(slot, this.ranges[k].lo + BigInt(off), this.ports[r], sport);
  }

  private check(i: number): void {
    if (!(i >= 0 && i < this.size && Number.isInteger(i))) throw new RangeError(`probe index ${i} outside 0..${this.size - 1}`);
  }

  /** The range holding address index a (binary search over the starts). */
  private rangeOf(a: number): number {
    const s = this.starts;
    let lo = 0, hi = s.length - 1;
    while (lo < hi) {
      const m = (lo + hi + 1) >>> 1;
      if (s[m] <= a) lo = m; else hi = m - 1;
    }
    return lo;
  }

  /**
   * The index i with at(i) = (addr, port), or -1 when it is not a probe of
   * this space: at()'s inverse, in O(log R + log pairs). `halfopen merge`
   * marks each row's index in a bitset to prove shards neither overlap nor miss.
   */
  indexOf(addr: bigint, port: number): number {
    if (port >= PORT_MIN && port <= PORT_MAX && this.portSet[port]) {
      const k = findRange(this.ranges, addr);
      if (k >= 0) {
        const a = this.starts[k] + Number(addr - this.ranges[k].lo);
        return a * this.ports.length + this.portRank(port);
      }
    }
    let a = 0, b = this.pairs.length - 1;
    const key = { addr, port };
    while (a <= b) {
      const m = (a + b) >>> 1;
      const c = cmpPair(this.pairs[m], key);
      if (c < 0) a = m + 1; else if (c > 0) b = m - 1; else return this.rangeProbes + m;
    }
    return -1;
  }

  // Position of each port in `ports`, built on first use (only indexOf needs it).
  private portRanks?: Int32Array;
  private portRank(port: number): number {
    if (!this.portRanks) {
      this.portRanks = new Int32Array(PORT_MAX + 1).fill(-1);
      this.ports.forEach((p, r) => { this.portRanks![p] = r; });
    }
    return this.portRanks[port];
  }

  /** Whether (addr, port) is one of the probes; O(log R + log pairs). */
  has(addr: bigint, port: number): boolean {
    if (port >= PORT_MIN && port <= PORT_MAX && this.portSet[port] && findRange(this.ranges, addr) >= 0) return true;
    let a = 0, b = this.pairs.length - 1;
    const key = { addr, port };
    while (a <= b) {
      const m = (a + b) >>> 1;
      const c = cmpPair(this.pairs[m], key);
      if (c < 0) a = m + 1; else if (c > 0) b = m - 1; else return true;
    }
    return false;
  }
}
