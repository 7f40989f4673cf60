// Packet builders for BPF_PROG_TEST_RUN fixtures: Ethernet (optionally VLAN
// tagged), IPv4 (optionally with options) or IPv6, then TCP or an ICMP error
// quoting a SYN. Checksums are real, though XDP does not check them.

export interface TcpSpec {
  src: string; dst: string; sport: number; dport: number;
  seq?: number; ack?: number; flags: { syn?: boolean; ack?: boolean; rst?: boolean; fin?: boolean };
  ttl?: number; ipOptions?: number; vlan?: number[]; fragment?: boolean; truncateTo?: number;
  /** TCP option bytes (a multiple of 4), e.g. SYN_ACK_OPTIONS. */
  tcpOptions?: number[];
  /** Put the pseudo-header sum in the TCP checksum field, as a CHECKSUM_PARTIAL skb carries it. */
  partialChecksum?: boolean;
}

/** What Linux puts in a SYN+ACK: MSS 1460, SACK permitted, timestamps, window scale 7. */
export const SYN_ACK_OPTIONS = [2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 3, 3, 7];

const MAC_A = [0x02, 0, 0, 0, 0, 0xaa];
const MAC_B = [0x02, 0, 0, 0, 0, 0xbb];

function v4(text: string): number[] { return text.split('.').map(Number); }
function v6(text: string): number[] {
  const [h, t] = text.split('::');
  const hs = h ? h.split(':') : [], ts = t !== undefined && t ? t.split(':') : [];
  const groups = t === undefined ? hs : [...hs, ...new Array(8 - hs.length - ts.length).fill('0'), ...ts];
  return groups.flatMap((g) => { const n = parseInt(g, 16); return [n >> 8, n & 255]; });
}
const isV6 = (a: string) => a.includes(':');

function csum(bytes: number[], init = 0): number {
  let s = init;
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i] << 8) | (bytes[i + 1] ?? 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}
const u16 = (n: number) => [(n >> 8) & 255, n & 255];
const u32 = (n: number) => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];

function ethernet(ethType: number, vlan: number[] = []): number[] {
  const out = [...MAC_A, ...MAC_B];
  for (const id of vlan) out.push(...u16(0x8100), ...u16(id));
  out.push(...u16(ethType));
  return out;
}

function tcpHeader(s: TcpSpec, pseudo: number[]): number[] {
  const f = s.flags;
  const flags = (f.fin ? 1 : 0) | (f.syn ? 2 : 0) | (f.rst ? 4 : 0) | (f.ack ? 16 : 0);
  const opts = s.tcpOptions ?? [];
  const h = [...u16(s.sport), ...u16(s.dport), ...u32(s.seq ?? 0), ...u32(s.ack ?? 0), (5 + opts.length / 4) << 4, flags, ...u16(65535), 0, 0, 0, 0, ...opts];
  // A partial checksum is the pseudo-header's sum, not complemented.
  const ck = s.partialChecksum ? ~csum(pseudo) & 0xffff : csum([...pseudo, ...h]);
  h[16] = ck >> 8; h[17] = ck & 255;
  return h;
}

/** The ones' complement checksum of bytes (0 when bytes include a correct checksum). */
export function checksum(bytes: number[] | Buffer, init = 0): number { return csum([...bytes], init); }

/** The IPv4 or IPv6 pseudo-header for a TCP segment of `len` bytes. */
export function pseudoHeader(src: string, dst: string, len: number): number[] {
  return isV6(src) ? [...v6(src), ...v6(dst), ...u32(len), 0, 0, 0, 6] : [...v4(src), ...v4(dst), 0, 6, ...u16(len)];
}

function ipv4Header(src: string, dst: string, proto: number, payloadLen: number, ttl: number, options: number, fragment: boolean): number[] {
  const ihl = 5 + options;
  const h = [0x40 | ihl, 0, ...u16(ihl * 4 + payloadLen), 0, 1, ...(fragment ? u16(0x2000) : u16(0x4000)), ttl, proto, 0, 0, ...v4(src), ...v4(dst)];
  for (let i = 0; i < options; i++) h.push(1, 1, 1, 1); // NOP options
  const ck = csum(h);
  h[10] = ck >> 8; h[11] = ck & 255;
  return h;
}

function ipv6Header(src: string, dst: string, next: number, payloadLen: number, hop: number): number[] {
  return [0x60, 0, 0, 0, ...u16(payloadLen), next, hop, ...v6(src), ...v6(dst)];
}

/** A TCP segment from `src` to `dst` in a full frame. */
export function tcpFrame(s: TcpSpec): Buffer {
  const ttl = s.ttl ?? 64;
  let out: number[];
  const len = 20 + (s.tcpOptions?.length ?? 0);
  const tcp = tcpHeader(s, pseudoHeader(s.src, s.dst, len));
  if (isV6(s.src)) out = [...ethernet(0x86dd, s.vlan), ...ipv6Header(s.src, s.dst, 6, len, ttl), ...tcp];
  else out = [...ethernet(0x0800, s.vlan), ...ipv4Header(s.src, s.dst, 6, len, ttl, s.ipOptions ?? 0, !!s.fragment), ...tcp];
  return Buffer.from(s.truncateTo !== undefined ? out.slice(0, s.truncateTo) : out);
}

/** An ICMP(v6) destination-unreachable from `router` quoting our SYN `syn`. */
export function icmpUnreachFrame(router: string, syn: { src: string; dst: string; sport: number; dport: number; seq: number }, code: number, truncateQuote = false): Buffer {
  const quotedTcp = [...u16(syn.sport), ...u16(syn.dport), ...u32(syn.seq)];
  const tcp = truncateQuote ? quotedTcp.slice(0, 4) : quotedTcp;
  if (isV6(router)) {
    const inner = [...ipv6Header(syn.src, syn.dst, 6, 24, 64), ...tcp];
    const icmp = [1, code, 0, 0, 0, 0, 0, 0, ...inner];
    const ck = csum([...v6(router), ...v6(syn.src), ...u32(icmp.length), 0, 0, 0, 58, ...icmp]);
    icmp[2] = ck >> 8; icmp[3] = ck & 255;
    return Buffer.from([...ethernet(0x86dd), ...ipv6Header(router, syn.src, 58, icmp.length, 63), ...icmp]);
  }
  const inner = [...ipv4Header(syn.src, syn.dst, 6, 24, 64, 0, false), ...tcp];
  const icmp = [3, code, 0, 0, 0, 0, 0, 0, ...inner];
  const ck = csum(icmp);
  icmp[2] = ck >> 8; icmp[3] = ck & 255;
  return Buffer.from([...ethernet(0x0800), ...ipv4Header(router, syn.src, 1, icmp.length, 63, 0, false), ...icmp]);
}

export function udpFrame(src: string, dst: string, sport: number, dport: number): Buffer {
  const udp = [...u16(sport), ...u16(dport), 0, 8, 0, 0];
  return Buffer.from([...ethernet(0x0800), ...ipv4Header(src, dst, 17, 8, 64, 0, false), ...udp]);
}
