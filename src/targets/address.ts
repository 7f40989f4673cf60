// Addresses are 128-bit bigints so one interval type covers both families.
// IPv4 lives at its IPv4-mapped position (::ffff:a.b.c.d, RFC 4291 2.5.5.2);
// consequently an IPv6 literal inside ::ffff:0:0/96 *is* an IPv4 address here
// and is probed and printed as IPv4.

import { targetError } from '../errors';

export type Family = 4 | 6;

export const V4_MIN = 0xffff_0000_0000n;
export const V4_MAX = 0xffff_ffff_ffffn;
export const ADDR_MAX = (1n << 128n) - 1n;

export const isV4 = (addr: bigint): boolean => addr >= V4_MIN && addr <= V4_MAX;
export const familyOf = (addr: bigint): Family => (isV4(addr) ? 4 : 6);

/** Mapped address of a 32-bit unsigned IPv4 value. */
export const v4FromNumber = (n: number): bigint => V4_MIN | BigInt(n >>> 0);
/** The 32-bit unsigned IPv4 value of a mapped address; caller guarantees isV4. */
export const v4ToNumber = (addr: bigint): number => Number(addr & 0xffff_ffffn);

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

// Leading zeros are refused: inet_aton reads "010" as octal, so accepting it
// would silently disagree with other tools about which host is meant.
// Read by character codes, not split and a pattern per octet: a config of
// 1,000,000 backends parses an address several times each.
function parseV4Number(s: string): number | null {
  const len = s.length;
  let n = 0, parts = 0, i = 0;
  for (;;) {
    const start = i;
    let o = 0;
    for (; i < len && i - start < 4; i++) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      o = o * 10 + (c - 48);
    }
    const digits = i - start;
    if (digits === 0 || digits > 3 || (digits > 1 && s.charCodeAt(start) === 48) || o > 255) return null;
    n = n * 256 + o;
    if (++parts === 4) return i === len ? n : null;
    if (i === len || s.charCodeAt(i) !== 46) return null;
    i++;
  }
}

/** Dotted-quad IPv4, or null if `s` is not one. */
export function parseIPv4(s: string): bigint | null {
  const n = parseV4Number(s);
  return n === null ? null : v4FromNumber(n);
}

/** RFC 4291 text form (with `::` and a trailing dotted quad), or null. Zone ids are refused: a probe target needs no scope and `%` would be ambiguous in specs. */
export function parseIPv6(s: string): bigint | null {
  if (s.length < 2 || s.length > 45) return null;
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const compressed = halves.length === 2;
  const head = parseGroups(halves[0], !compressed);
  const tail = compressed ? parseGroups(halves[1], true) : [];
  if (head === null || tail === null) return null;
  const n = head.length + tail.length;
  if (compressed ? n > 7 : n !== 8) return null;
  const groups = head.concat(new Array<number>(8 - n).fill(0), tail);
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(g);
  return v;
}

// `final` marks the part that ends the address, the only place a dotted quad may appear.
function parseGroups(part: string, final: boolean): number[] | null {
  if (part === '') return [];
  const fields = part.split(':');
  const out: number[] = [];
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i];
    if (HEX_GROUP.test(f)) { out.push(parseInt(f, 16)); continue; }
    const v4 = final && i === fields.length - 1 ? parseV4Number(f) : null;
    if (v4 === null) return null;
    out.push(Math.floor(v4 / 65536), v4 % 65536);
  }
  return out;
}

/** IPv4 or IPv6 text, or null. */
export function parseAddress(s: string): bigint | null {
  return s.includes(':') ? parseIPv6(s) : parseIPv4(s);
}

/** parseAddress that throws E_TARGET naming `what` (e.g. "source address"). */
export function mustParseAddress(s: string, what = 'address'): bigint {
  const a = parseAddress(s);
  if (a === null) throw targetError(`invalid ${what} "${s}": expected an IPv4 or IPv6 address`);
  return a;
}

function formatV4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Dotted quad for IPv4, RFC 5952 canonical text for IPv6. */
export function formatAddress(addr: bigint): string {
  if (addr < 0n || addr > ADDR_MAX) throw new RangeError(`address out of range: ${addr}`);
  if (isV4(addr)) return formatV4(v4ToNumber(addr));
  const g: number[] = new Array(8);
  for (let i = 7; i >= 0; i--) { g[i] = Number(addr & 0xffffn); addr >>= 16n; }
  // RFC 5952 4.2: compress the longest run of >= 2 zero groups, the first on ties.
  let bestAt = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: number, b: number): string => g.slice(a, b).map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(0, 8);
  return `${hex(0, bestAt)}::${hex(bestAt + bestLen, 8)}`;
}

/** An address (or host name) and a port as one text: IPv6 in brackets, `[2001:2::9]:80`, so the port reads unambiguously. */
export const hostPort = (host: string, port: number): string => (host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`);

/** Network-order 16-byte form (IPv4 as its mapped address). */
export function addressBytes(addr: bigint): Uint8Array {
  const out = new Uint8Array(16);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, addr >> 64n);
  dv.setBigUint64(8, BigInt.asUintN(64, addr));
  return out;
}

export function addressFromBytes(bytes: Uint8Array): bigint {
  if (bytes.length !== 16) throw new RangeError(`address needs 16 bytes, got ${bytes.length}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, 16);
  return (dv.getBigUint64(0) << 64n) | dv.getBigUint64(8);
}
