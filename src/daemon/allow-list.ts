// Which addresses serve may probe on request (`/probe`, the plugin socket's
// learning). A raw-SYN prober reachable from outside must not become a
// scanning oracle, so probing on request is refused unless the address is
// inside this list.
//
// Entries are addresses, CIDRs, ranges `a-b` (as --exclude takes them) or host
// names. A name entry allows the addresses it resolves to; names are looked up
// again by refresh(). A target given by name is allowed only through its
// addresses: it is resolved, and every address probed must be in the list.
// IPv4-mapped IPv6 (::ffff:a.b.c.d) is IPv4 here, as everywhere in halfopen,
// so one entry covers both spellings.
import { HalfopenError } from '../errors';
import { isV4, parseAddress } from '../targets/address';
import { AddrRange, findRange, mergeRanges } from '../targets/ranges';
import { lookupHost } from '../targets/resolve';
import { isHostname, parseExcludeSpec } from '../targets/target-set';

/** Every address of a name; the default is the one resolver's (src/targets/resolve.ts). */
export type LookupAll = (name: string) => Promise<bigint[]>;
const lookupAll: LookupAll = async (name) => {
  const r = await lookupHost(name, { deadlineMs: 5000 });
  if (!r.addrs.length) throw new Error(r.error);
  return r.addrs;
};

export class AllowList {
  private fixed: AddrRange[];
  private named = new Map<string, AddrRange[]>();
  private merged: AddrRange[];

  private constructor(fixed: AddrRange[], readonly names: readonly string[]) {
    this.fixed = mergeRanges(fixed);
    this.merged = this.fixed;
  }

  /**
   * Parses the entries of a config list; `where` names it in errors
   * (e.g. "exporter.allow"). Throws E_CONFIG naming the bad entry.
   */
  static parse(entries: unknown, where: string): AllowList {
    if (!Array.isArray(entries)) throw new HalfopenError('E_CONFIG', `${where}: expected a list of addresses, CIDRs, ranges or host names`);
    const fixed: AddrRange[] = [];
    const names: string[] = [];
    for (const e of entries) {
      if (typeof e !== 'string' || e.trim() === '') throw new HalfopenError('E_CONFIG', `${where}: entry ${JSON.stringify(e)}: expected an address, CIDR, range or host name`);
      const s = e.trim();
      try {
        fixed.push(parseExcludeSpec(s));
      } catch (err) {
        if (!isHostname(s)) throw new HalfopenError('E_CONFIG', `${where}: entry "${s}": ${(err as Error).message.replace(/^invalid exclude "[^"]*": /, '')} or a host name`);
        names.push(s.replace(/\.$/, '').toLowerCase());
      }
    }
    return new AllowList(fixed, [...new Set(names)]);
  }

  /** Looks the name entries up again; a name that does not resolve allows nothing until it does. */
  async refresh(lookup: LookupAll = lookupAll): Promise<void> {
    await Promise.all(this.names.map(async (n) => {
      try {
        this.named.set(n, (await lookup(n)).map((a) => ({ lo: a, hi: a })));
      } catch {
        this.named.set(n, []);
      }
    }));
    this.merged = mergeRanges([...this.fixed, ...[...this.named.values()].flat()]);
  }

  /** Whether `addr` (a 128-bit halfopen address) may be probed on request. */
  allows(addr: bigint): boolean {
    return findRange(this.merged, addr) >= 0;
  }

  /** allows() for address text; false for anything that is not an address. */
  allowsText(text: string): boolean {
    const a = parseAddress(text.replace(/^\[(.*)\]$/, '$1'));
    return a !== null && this.allows(a);
  }

  get empty(): boolean { return this.fixed.length === 0 && this.names.length === 0; }

  /**
   * One allowed address of the family (the first of the first range, past a
   * network address when the range has room), or undefined: what the engine
   * finds its route by when no backend has an address of that family.
   */
  sample(v4: boolean): bigint | undefined {
    const r = this.merged.find((x) => isV4(x.lo) === v4);
    if (!r) return undefined;
    return r.hi > r.lo ? r.lo + 1n : r.lo;
  }
}
