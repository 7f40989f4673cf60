// Target and exclude specs → address intervals, explicit pairs and hostnames.
// Hostnames are resolved separately (resolveHosts) so parsing stays synchronous
// and every syntax error surfaces before any DNS traffic.

import { readFileSync } from 'node:fs';
import { HalfopenError, targetError } from '../errors';
import { familyOf, isV4, parseAddress, parseIPv4, parseIPv6 } from './address';
import { parsePortNumber } from './ports';
import { lookupHost, type LookupFn } from './resolve';
import type { AddrPort } from './probe-space';
import { AddrRange, cidrRange } from './ranges';

export type { AddrRange } from './ranges';
export type { LookupFn } from './resolve';
export { mergeRanges, subtractRanges, splitByFamily, cidrRange, rangeSize, findRange } from './ranges';
export { ProbeSpace, MAX_PROBES } from './probe-space';
export type { AddrPort, ProbeSpaceInput } from './probe-space';

export type ParsedSpec =
  | { kind: 'range'; range: AddrRange }
  | { kind: 'pair'; addr: bigint; port: number }
  | { kind: 'host'; name: string; port?: number };

const TARGET_FORMS = 'expected an IPv4/IPv6 address, CIDR, range a-b, host:port, [v6]:port or hostname';
const EXCLUDE_FORMS = 'expected an IPv4/IPv6 address, CIDR or range a-b';

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const ALL_DIGITS = /^\d+$/;

// A name whose last label is numeric is refused (RFC 3696 2) so that a typo
// such as 198.18.0.300 is an error rather than a DNS query.
export function isHostname(s: string): boolean {
  const name = s.endsWith('.') ? s.slice(0, -1) : s;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  return labels.every((l) => LABEL.test(l)) && !ALL_DIGITS.test(labels[labels.length - 1]);
}

type Fail = (why?: string) => Error;

// Address, CIDR or range; null when `t` is none of these and may be another form.
function parseAddressForm(t: string, fail: Fail): AddrRange | null {
  const slash = t.indexOf('/');
  if (slash >= 0) {
    const addr = parseAddress(t.slice(0, slash));
    const prefixText = t.slice(slash + 1);
    if (addr === null || !/^\d{1,3}$/.test(prefixText)) throw fail();
    const bits = t.slice(0, slash).includes(':') ? 128 : 32;
    const prefix = Number(prefixText);
    if (prefix > bits) throw fail(`prefix length must be 0-${bits} for IPv${bits === 32 ? 4 : 6}`);
    // Host bits set (10.1.2.3/8) are masked off, as nmap does.
    return cidrRange(addr, prefix, bits);
  }
  const dash = t.indexOf('-');
  if (dash >= 0) {
    const lo = parseAddress(t.slice(0, dash));
    // "web-01" and friends are hostnames, not ranges.
    if (lo === null) return null;
    const hiText = t.slice(dash + 1);
    let hi = parseAddress(hiText);
    if (hi === null && isV4(lo) && /^\d{1,3}$/.test(hiText) && Number(hiText) <= 255) {
      // Short form 198.18.0.1-20: the bound replaces the last octet.
      hi = (lo & ~0xffn) | BigInt(hiText);
    }
    if (hi === null) throw fail('expected a range a-b of two addresses (or a.b.c.d-N)');
    if (familyOf(lo) !== familyOf(hi)) throw fail('range ends are of different address families');
    if (lo > hi) throw fail('range start is greater than end');
    return { lo, hi };
  }
  const a = parseAddress(t);
  return a === null ? null : { lo: a, hi: a };
}

/** One target spec. Throws E_TARGET naming the spec and what was expected. */
export function parseTargetSpec(s: string): ParsedSpec {
  const t = s.trim();
  const fail: Fail = (why) => targetError(`invalid target "${s}": ${why ?? TARGET_FORMS}`);
  if (t === '') throw fail();

  if (t.startsWith('[')) {
    const m = /^\[([^\]]*)\](?::([^:]*))?$/.exec(t);
    const addr = m ? parseIPv6(m[1]) : null;
    if (!m || addr === null) throw fail('expected [IPv6]:port');
    if (m[2] === undefined) return { kind: 'range', range: { lo: addr, hi: addr } };
    return { kind: 'pair', addr, port: portOf(m[2], fail) };
  }

  const range = parseAddressForm(t, fail);
  if (range !== null) return { kind: 'range', range };

  const colon = t.indexOf(':');
  if (colon >= 0) {
    // More than one colon and not an address: an unbracketed IPv6 with a port, or junk.
    if (t.indexOf(':', colon + 1) >= 0) throw fail();
    const host = t.slice(0, colon);
    const port = portOf(t.slice(colon + 1), fail);
    const addr = parseIPv4(host);
    if (addr !== null) return { kind: 'pair', addr, port };
    if (isHostname(host)) return { kind: 'host', name: host.toLowerCase(), port };
    throw fail();
  }

  if (isHostname(t)) return { kind: 'host', name: t.toLowerCase() };
  throw fail();
}

function portOf(text: string, fail: Fail): number {
  const p = parsePortNumber(text);
  if (p === null) throw fail(`port "${text}" is not a number 1-65535`);
  return p;
}

/** One exclude spec: address, CIDR or range (hostnames are refused: excludes must not depend on DNS). */
export function parseExcludeSpec(s: string): AddrRange {
  const fail: Fail = (why) => targetError(`invalid exclude "${s}": ${why ?? EXCLUDE_FORMS}`);
  const r = parseAddressForm(s.trim(), fail);
  if (r === null) throw fail();
  return r;
}

/** `--exclude SPEC[,SPEC…]`. */
export function parseExcludeList(list: string): AddrRange[] {
  return list.split(',').map((item) => {
    if (item.trim() === '') throw targetError(`invalid exclude list "${list}": empty entry, ${EXCLUDE_FORMS}`);
    return parseExcludeSpec(item);
  });
}

/** Specs from a file: whitespace-separated, `#` to end of line is a comment. */
export function readTargetFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new HalfopenError('E_USAGE', `cannot read "${path}": ${e.code ?? e.message}`, { errno: e.errno, syscall: e.syscall });
  }
  const specs: string[] = [];
  for (const line of text.replace(/^\uFEFF/, '').split('\n')) {
    const hash = line.indexOf('#');
    const body = hash >= 0 ? line.slice(0, hash) : line;
    for (const spec of body.split(/\s+/)) if (spec !== '') specs.push(spec);
  }
  return specs;
}

/** `--exclude-file`: readTargetFile + parseExcludeSpec. */
export function readExcludeFile(path: string): AddrRange[] {
  return readTargetFile(path).map(parseExcludeSpec);
}

export interface ResolveOptions {
  /** Keep only this family's addresses of each hostname; literal addresses are not filtered. */
  family?: 4 | 6;
  /** Injected for tests; defaults to the system resolver (see resolve.ts). */
  lookup?: LookupFn;
  /** Lookups in flight at once. */
  concurrency?: number;
}

export interface ResolvedTargets { ranges: AddrRange[]; pairs: AddrPort[] }

/**
 * Turns parsed specs into ranges and pairs, resolving each distinct hostname
 * once. A hostname without a port contributes its addresses to the ranges; one
 * with a port contributes pairs. Throws E_RESOLVE for the first failing name.
 */
export async function resolveHosts(specs: readonly ParsedSpec[], opts: ResolveOptions = {}): Promise<ResolvedTargets> {
  const family = opts.family;
  const names = [...new Set(specs.flatMap((s) => (s.kind === 'host' ? [s.name] : [])))];
  const results = new Map<string, bigint[] | HalfopenError>();

  const resolveOne = async (name: string): Promise<void> => {
    const r = await lookupHost(name, { family, lookup: opts.lookup });
    results.set(name, r.addrs.length ? r.addrs : new HalfopenError('E_RESOLVE', `cannot resolve "${name}": ${r.error}`, { errno: r.errno, syscall: r.syscall }));
  };

  // The libuv pool runs only a few getaddrinfo calls at a time anyway; the cap
  // keeps a file of many thousand names from queueing that many promises.
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < names.length) await resolveOne(names[next++]);
  };
  const width = Math.max(1, Math.min(opts.concurrency ?? 16, names.length));
  await Promise.all(Array.from({ length: width }, worker));

  const failed = names.filter((n) => results.get(n) instanceof HalfopenError);
  if (failed.length > 0) {
    const first = results.get(failed[0]) as HalfopenError;
    if (failed.length > 1) {
      throw new HalfopenError('E_RESOLVE', `${first.message} (and ${failed.length - 1} more unresolvable)`, { errno: first.errno, syscall: first.syscall });
    }
    throw first;
  }

  const ranges: AddrRange[] = [];
  const pairs: AddrPort[] = [];
  for (const s of specs) {
    if (s.kind === 'range') ranges.push({ lo: s.range.lo, hi: s.range.hi });
    else if (s.kind === 'pair') pairs.push({ addr: s.addr, port: s.port });
    else {
      for (const a of results.get(s.name) as bigint[]) {
        if (s.port === undefined) ranges.push({ lo: a, hi: a });
        else pairs.push({ addr: a, port: s.port });
      }
    }
  }
  return { ranges, pairs };
}
