// BPF tier: packet fixtures run through the real compiled matcher with
// BPF_PROG_TEST_RUN, through both entry points (XDP and tc) on the same table
// of packets. Each fixture states the action, the verdict recorded in the
// results map and the counters that must move.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { native, NativeProgram } from '../../src/addon/addon';
import { ProbeTable } from '../../src/engine/probe-table';
import * as C from '../../src/contract.generated';
import { addressBytes, mustParseAddress } from '../../src/targets/address';
import { tcpFrame, icmpUnreachFrame, udpFrame, TcpSpec, SYN_ACK_OPTIONS, checksum, pseudoHeader } from '../helpers/packets';
import { bpfSkipReason } from '../helpers/privileges';

const XDP_DROP = 1, XDP_PASS = 2, XDP_TX = 3;
const TCX_NEXT = -1, TCX_DROP = 2;
/** The tc entry point's action for each XDP action of the fixtures (no XDP_TX at tc). */
const TC_ACTION: Record<number, number> = { [XDP_PASS]: TCX_NEXT, [XDP_DROP]: TCX_DROP };
type Entry = 'xdp' | 'tc';
const skip = bpfSkipReason();
const KEY = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
const ME4 = '198.19.255.1', ME6 = '2001:2:0:ffff::1';
/** Further source addresses of the prober (sweep --source-ip LIST). */
const OTHER4 = '198.19.253.3', OTHER6 = '2001:2:0:fffe::7';

interface Slot { idx: number; addr: string; dport: number; sport: number }
const S4: Slot = { idx: 3, addr: '198.18.0.7', dport: 80, sport: 61003 };
const S6: Slot = { idx: 5, addr: '2001:2::7', dport: 443, sport: 61005 };

/**
 * SipHash-2-4 written from the reference algorithm (Aumasson and Bernstein,
 * "SipHash: a fast short-input PRF", and its reference C), over any message:
 * the fixtures' cookies come from here, not from the product's ho_cookie.
 */
function siphash24(key: Buffer, msg: Buffer): bigint {
  const M = (1n << 64n) - 1n;
  const rotl = (x: bigint, b: bigint) => ((x << b) | (x >> (64n - b))) & M;
  const k0 = key.readBigUInt64LE(0), k1 = key.readBigUInt64LE(8);
  let v0 = k0 ^ 0x736f6d6570736575n, v1 = k1 ^ 0x646f72616e646f6dn, v2 = k0 ^ 0x6c7967656e657261n, v3 = k1 ^ 0x7465646279746573n;
  const round = () => {
    v0 = (v0 + v1) & M; v1 = rotl(v1, 13n); v1 ^= v0; v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & M; v3 = rotl(v3, 16n); v3 ^= v2;
    v0 = (v0 + v3) & M; v3 = rotl(v3, 21n); v3 ^= v0;
    v2 = (v2 + v1) & M; v1 = rotl(v1, 17n); v1 ^= v2; v2 = rotl(v2, 32n);
  };
  // The last block: the remaining bytes, zero padding, the length's low byte on top.
  const full = msg.length - (msg.length % 8);
  const last = Buffer.alloc(8);
  msg.copy(last, 0, full);
  last[7] = msg.length & 0xff;
  const blocks = [...Array(full / 8).keys()].map((i) => msg.readBigUInt64LE(i * 8)).concat([last.readBigUInt64LE(0)]);
  for (const m of blocks) { v3 ^= m; round(); round(); v0 ^= m; }
  v2 ^= 0xffn;
  round(); round(); round(); round();
  return v0 ^ v1 ^ v2 ^ v3;
}

/**
 * The cookie's layout as bpf/halfopen.h and bpf/ho_cookie.h state it, computed
 * here: the low 32 bits of SipHash-2-4 over the 16-byte address in network
 * order (IPv4 as ::ffff:a.b.c.d), the target port, then our source port, each
 * big-endian, then four zero bytes (24 bytes).
 */
function refCookie(key: Buffer, addr: string, dport: number, sport: number): number {
  const msg = Buffer.alloc(24);
  Buffer.from(addressBytes(mustParseAddress(addr))).copy(msg, 0);
  msg.writeUInt16BE(dport, 16);
  msg.writeUInt16BE(sport, 18);
  return Number(siphash24(key, msg) & 0xffffffffn);
}

const seqOf = (s: Slot) => (s.idx ^ refCookie(KEY, s.addr, s.dport, s.sport)) >>> 0;
const me = (s: Slot) => (s.addr.includes(':') ? ME6 : ME4);

/** The target's answer to our SYN for slot s. */
function reply(s: Slot, flags: TcpSpec['flags'], extra: Partial<TcpSpec> = {}): Buffer {
  return tcpFrame({ src: s.addr, dst: me(s), sport: s.dport, dport: s.sport, seq: 1000, ack: (seqOf(s) + 1) >>> 0, flags, ...extra });
}

describe('XDP reply matcher (BPF_PROG_TEST_RUN)', { skip }, () => {
  let prog: NativeProgram;
  let table: ProbeTable;

  before(() => {
    prog = new native.Program({ capacity: 16, key: KEY, sportLo: 61000, sportHi: 61999 });
    table = new ProbeTable(prog.mapBuffer('probes'), prog.mapBuffer('results'));
    for (const s of [S4, S6]) table.set(s.idx, mustParseAddress(s.addr), s.dport, s.sport);
  });
  after(() => prog?.close());

  function runCase(pkt: Buffer, entry: Entry = 'xdp') {
    table.clearResults();
    prog.poll();
    const before = prog.counters();
    const r = prog.testRun(pkt, 1, entry);
    const after = prog.counters();
    const delta: Record<string, number> = {};
    C.COUNTER_NAMES.forEach((n, i) => { if (after[i] !== before[i]) delta[n] = after[i] - before[i]; });
    return { action: r.retval, data: r.data, delta, events: [...prog.poll()] };
  }

  /** BPF_PROG_TEST_RUN builds no skb for an IPv4 EtherType without a whole IPv4 header (EINVAL): XDP only. */
  const NO_SKB = 'the kernel\'s test run builds no skb for an IPv4 frame without a whole IPv4 header';
  const cases: Array<{ name: string; pkt: () => Buffer; action: number; slot?: Slot; state?: number; counters: Record<string, number>; ttl?: number; icmp?: [number, number]; tcSkip?: string }> = [
    { name: 'IPv4 SYN+ACK → open, passed so the kernel resets it', pkt: () => reply(S4, { syn: true, ack: true }, { ttl: 61 }), action: XDP_PASS, slot: S4, state: C.HO_PROBE_STATE_OPEN, ttl: 61, counters: { packets: 1, candidates: 1, synack: 1 } },
    { name: 'IPv4 RST+ACK → closed, consumed', pkt: () => reply(S4, { rst: true, ack: true }), action: XDP_DROP, slot: S4, state: C.HO_PROBE_STATE_CLOSED, counters: { packets: 1, candidates: 1, rst: 1 } },
    { name: 'IPv4 ICMP host unreachable quoting our SYN → unreachable, consumed', pkt: () => icmpUnreachFrame('198.18.0.1', { src: ME4, dst: S4.addr, sport: S4.sport, dport: S4.dport, seq: seqOf(S4) }, 1), action: XDP_DROP, slot: S4, state: C.HO_PROBE_STATE_UNREACHABLE, icmp: [3, 1], counters: { packets: 1, candidates: 1, icmp: 1 } },
    { name: 'IPv6 SYN+ACK → open', pkt: () => reply(S6, { syn: true, ack: true }, { ttl: 60 }), action: XDP_PASS, slot: S6, state: C.HO_PROBE_STATE_OPEN, ttl: 60, counters: { packets: 1, candidates: 1, synack: 1 } },
    { name: 'IPv6 RST+ACK → closed', pkt: () => reply(S6, { rst: true, ack: true }), action: XDP_DROP, slot: S6, state: C.HO_PROBE_STATE_CLOSED, counters: { packets: 1, candidates: 1, rst: 1 } },
    { name: 'ICMPv6 address unreachable → unreachable', pkt: () => icmpUnreachFrame('2001:2::1', { src: ME6, dst: S6.addr, sport: S6.sport, dport: S6.dport, seq: seqOf(S6) }, 3), action: XDP_DROP, slot: S6, state: C.HO_PROBE_STATE_UNREACHABLE, icmp: [1, 3], counters: { packets: 1, candidates: 1, icmp: 1 } },
    { name: 'IPv4 header with options → still matched', pkt: () => reply(S4, { syn: true, ack: true }, { ipOptions: 2 }), action: XDP_PASS, slot: S4, state: C.HO_PROBE_STATE_OPEN, counters: { packets: 1, candidates: 1, synack: 1 } },
    { name: 'VLAN-tagged frame (802.1Q) → still matched', pkt: () => reply(S4, { rst: true, ack: true }, { vlan: [42] }), action: XDP_DROP, slot: S4, state: C.HO_PROBE_STATE_CLOSED, counters: { packets: 1, candidates: 1, rst: 1 } },
    { name: 'double-tagged frame (QinQ) → still matched', pkt: () => reply(S6, { syn: true, ack: true }, { vlan: [10, 20] }), action: XDP_PASS, slot: S6, state: C.HO_PROBE_STATE_OPEN, counters: { packets: 1, candidates: 1, synack: 1 } },
    // Several source addresses (sweep --source-ip LIST): the address a reply is sent to is no part of the match.
    { name: 'IPv4 SYN+ACK to another of the prober\'s addresses → open', pkt: () => reply(S4, { syn: true, ack: true }, { dst: OTHER4 }), action: XDP_PASS, slot: S4, state: C.HO_PROBE_STATE_OPEN, counters: { packets: 1, candidates: 1, synack: 1 } },
    { name: 'IPv4 RST+ACK to another of the prober\'s addresses → closed', pkt: () => reply(S4, { rst: true, ack: true }, { dst: OTHER4 }), action: XDP_DROP, slot: S4, state: C.HO_PROBE_STATE_CLOSED, counters: { packets: 1, candidates: 1, rst: 1 } },
    { name: 'ICMP quoting a SYN from another of the prober\'s addresses → unreachable', pkt: () => icmpUnreachFrame('198.18.0.1', { src: OTHER4, dst: S4.addr, sport: S4.sport, dport: S4.dport, seq: seqOf(S4) }, 1), action: XDP_DROP, slot: S4, state: C.HO_PROBE_STATE_UNREACHABLE, icmp: [3, 1], counters: { packets: 1, candidates: 1, icmp: 1 } },
    { name: 'IPv6 SYN+ACK to another of the prober\'s addresses → open', pkt: () => reply(S6, { syn: true, ack: true }, { dst: OTHER6 }), action: XDP_PASS, slot: S6, state: C.HO_PROBE_STATE_OPEN, counters: { packets: 1, candidates: 1, synack: 1 } },
    { name: 'wrong cookie → passed, counted, nothing recorded', pkt: () => tcpFrame({ src: S4.addr, dst: ME4, sport: S4.dport, dport: S4.sport, ack: (seqOf(S4) ^ 0x5a5a0000) + 1, flags: { syn: true, ack: true } }), action: XDP_PASS, counters: { packets: 1, candidates: 1, bad_cookie: 1 } },
    { name: 'spoofed source address with a valid index → bad match', pkt: () => tcpFrame({ src: '198.18.0.8', dst: ME4, sport: S4.dport, dport: S4.sport, ack: (S4.idx ^ refCookie(KEY, '198.18.0.8', S4.dport, S4.sport)) + 1 >>> 0, flags: { rst: true, ack: true } }), action: XDP_PASS, counters: { packets: 1, candidates: 1, bad_match: 1 } },
    { name: 'reply from another target port → not this probe', pkt: () => reply({ ...S4, dport: 81 }, { syn: true, ack: true }), action: XDP_PASS, counters: { packets: 1, candidates: 1, bad_match: 1 } },
    { name: 'destination port outside our range → untouched', pkt: () => reply({ ...S4, sport: 40000 }, { syn: true, ack: true }), action: XDP_PASS, counters: { packets: 1 } },
    { name: 'RST without ACK cannot be validated → passed', pkt: () => reply(S4, { rst: true }), action: XDP_PASS, counters: { packets: 1, candidates: 1 } },
    { name: 'truncated TCP header → passed, malformed', pkt: () => reply(S4, { syn: true, ack: true }, { truncateTo: 14 + 20 + 10 }), action: XDP_PASS, counters: { packets: 1, malformed: 1 } },
    { name: 'truncated IP header → passed untouched', pkt: () => reply(S4, { syn: true, ack: true }, { truncateTo: 14 + 12 }), action: XDP_PASS, counters: { packets: 1 }, tcSkip: NO_SKB },
    { name: 'ICMP quoting only 4 bytes of TCP → passed, malformed', pkt: () => icmpUnreachFrame('198.18.0.1', { src: ME4, dst: S4.addr, sport: S4.sport, dport: S4.dport, seq: seqOf(S4) }, 1, true), action: XDP_PASS, counters: { packets: 1, malformed: 1 } },
    { name: 'IP fragment → passed untouched', pkt: () => reply(S4, { syn: true, ack: true }, { fragment: true }), action: XDP_PASS, counters: { packets: 1 } },
    { name: 'UDP → passed untouched', pkt: () => udpFrame(S4.addr, ME4, 53, 61003), action: XDP_PASS, counters: { packets: 1 } },
    { name: 'IPv4 EtherType with no IP header → passed', pkt: () => reply(S4, { syn: true, ack: true }).subarray(0, 14), action: XDP_PASS, counters: { packets: 1 }, tcSkip: NO_SKB },
    { name: 'ARP → passed untouched', pkt: () => Buffer.concat([reply(S4, { syn: true, ack: true }).subarray(0, 12), Buffer.from([0x08, 0x06]), Buffer.alloc(28)]), action: XDP_PASS, counters: { packets: 1 } },
  ];

  for (const entry of ['xdp', 'tc'] as const) for (const c of cases) {
    test(`${entry}: ${c.name}`, { skip: entry === 'tc' && c.tcSkip }, () => {
      const pkt = c.pkt();
      const r = runCase(pkt, entry);
      assert.equal(r.action, entry === 'xdp' ? c.action : TC_ACTION[c.action], `${entry} action`);
      assert.deepEqual(r.delta, c.counters, 'counters');
      assert.ok(r.data.equals(pkt), 'the packet leaves the program unmodified');
      for (const s of [S4, S6]) {
        const v = table.verdict(s.idx);
        if (s === c.slot) {
          assert.ok(v, 'verdict recorded');
          assert.equal(v!.state, c.state);
          assert.equal(v!.replies, 1);
          if (c.ttl !== undefined) assert.equal(v!.ttl, c.ttl);
          if (c.icmp) assert.deepEqual([v!.icmpType, v!.icmpCode], c.icmp);
          assert.deepEqual(r.events, [s.idx], 'one ring-buffer event');
        } else {
          assert.equal(v, null, `no verdict for slot ${s.idx}`);
        }
      }
      if (!c.slot) assert.deepEqual(r.events, []);
    });
  }

  for (const entry of ['xdp', 'tc'] as const) test(`${entry}: a second reply is a duplicate: counted, verdict unchanged, SYN+ACK still passed`, () => {
    table.clearResults();
    prog.poll();
    prog.testRun(reply(S4, { syn: true, ack: true }), 1, entry);
    const before = prog.counters();
    const r = prog.testRun(reply(S4, { rst: true, ack: true }), 1, entry);
    const r2 = prog.testRun(reply(S4, { syn: true, ack: true }), 1, entry);
    const after = prog.counters();
    assert.equal(r.retval, entry === 'xdp' ? XDP_DROP : TCX_DROP);
    assert.equal(r2.retval, entry === 'xdp' ? XDP_PASS : TCX_NEXT);
    assert.equal(after[C.HO_CNT_DUPLICATE] - before[C.HO_CNT_DUPLICATE], 2);
    const v = table.verdict(S4.idx)!;
    assert.equal(v.state, C.HO_PROBE_STATE_OPEN);
    assert.equal(v.replies, 3);
    assert.deepEqual([...prog.poll()], [S4.idx], 'only the first verdict is an event');
  });

  for (const entry of ['xdp', 'tc'] as const) test(`${entry}: an empty slot never matches`, () => {
    const ghost: Slot = { idx: 9, addr: '198.18.0.9', dport: 80, sport: 61009 };
    const r = runCase(reply(ghost, { syn: true, ack: true }), entry);
    assert.equal(r.action, entry === 'xdp' ? XDP_PASS : TCX_NEXT);
    assert.deepEqual(r.delta, { packets: 1, candidates: 1, bad_match: 1 });
  });

  describe('RST by XDP_TX (generic mode)', () => {
    before(() => prog.setRstMode(C.HO_RST_XDP_SKB));
    after(() => prog.setRstMode(C.HO_RST_KERNEL));

    /** Checks that `out` is the RST Linux would send for SYN+ACK `inp`, and returns its TCP checksum field. */
    function assertRst(inp: Buffer, out: Buffer, s: Slot, l3: number): number {
      const v6 = s.addr.includes(':');
      const l4 = l3 + (v6 ? 40 : 20);
      assert.equal(out.length, l4 + 20, 'trimmed to the bare headers');
      assert.ok(out.subarray(0, 6).equals(inp.subarray(6, 12)) && out.subarray(6, 12).equals(inp.subarray(0, 6)), 'MACs swapped');
      assert.ok(out.subarray(12, l3).equals(inp.subarray(12, l3)), 'VLAN tags and EtherType kept');
      const ip = out.subarray(l3, l4);
      if (v6) {
        assert.equal(ip.readUInt32BE(0), 0x60000000);
        assert.deepEqual([ip.readUInt16BE(4), ip[6], ip[7]], [20, 6, 64], 'payload length, next header, hop limit');
        assert.ok(ip.subarray(8, 24).equals(inp.subarray(l3 + 24, l3 + 40)) && ip.subarray(24, 40).equals(inp.subarray(l3 + 8, l3 + 24)), 'addresses swapped');
      } else {
        assert.deepEqual([ip[0], ip[1], ip.readUInt16BE(2), ip.readUInt16BE(4), ip.readUInt16BE(6), ip[8], ip[9]], [0x45, 0, 40, 0, 0x4000, 64, 6]);
        assert.equal(checksum(ip), 0, 'IPv4 header checksum');
        assert.ok(ip.subarray(12, 16).equals(inp.subarray(l3 + 16, l3 + 20)) && ip.subarray(16, 20).equals(inp.subarray(l3 + 12, l3 + 16)), 'addresses swapped');
      }
      const th = out.subarray(l4);
      assert.deepEqual([th.readUInt16BE(0), th.readUInt16BE(2)], [s.sport, s.dport], 'ports swapped');
      assert.equal(th.readUInt32BE(4), (seqOf(s) + 1) >>> 0, 'seq = the SYN+ACK\'s ack');
      assert.deepEqual([th.readUInt32BE(8), th[12], th[13], th.readUInt16BE(14), th.readUInt16BE(18)], [0, 0x50, 0x04, 0, 0], 'RST alone, no options, no window');
      return th.readUInt16BE(16);
    }

    const rstCases: Array<{ name: string; s: Slot; extra: Partial<TcpSpec>; l3: number }> = [
      { name: 'IPv4 SYN+ACK with options → open, answered with RST', s: S4, extra: { tcpOptions: SYN_ACK_OPTIONS, ttl: 61 }, l3: 14 },
      { name: 'IPv6 SYN+ACK → open, answered with RST', s: S6, extra: { tcpOptions: SYN_ACK_OPTIONS }, l3: 14 },
      { name: 'QinQ-tagged IPv4 SYN+ACK → RST on the same VLANs', s: S4, extra: { vlan: [10, 20] }, l3: 22 },
      { name: 'IPv6 SYN+ACK on a VLAN', s: S6, extra: { vlan: [42], tcpOptions: SYN_ACK_OPTIONS }, l3: 18 },
    ];
    for (const c of rstCases) {
      test(c.name, () => {
        const inp = reply(c.s, { syn: true, ack: true }, c.extra);
        const r = runCase(inp);
        assert.equal(r.action, XDP_TX);
        assert.deepEqual(r.delta, { packets: 1, candidates: 1, synack: 1, rst_sent: 1 });
        assert.equal(table.verdict(c.s.idx)?.state, C.HO_PROBE_STATE_OPEN);
        assert.deepEqual(r.events, [c.s.idx]);
        assertRst(inp, r.data, c.s, c.l3);
        const me_ = me(c.s);
        assert.equal(checksum([...pseudoHeader(me_, c.s.addr, 20), ...r.data.subarray(c.l3 + (c.s === S6 ? 40 : 20))]), 0, 'full TCP checksum');
      });
    }

    for (const s of [S4, S6]) {
      test(`IPv${s === S4 ? 4 : 6} SYN+ACK with a partial checksum → the RST carries its own pseudo-header sum`, () => {
        const inp = reply(s, { syn: true, ack: true }, { tcpOptions: SYN_ACK_OPTIONS, partialChecksum: true });
        const r = runCase(inp);
        assert.equal(r.action, XDP_TX);
        const ck = assertRst(inp, r.data, s, 14);
        assert.equal(ck, ~checksum(pseudoHeader(me(s), s.addr, 20)) & 0xffff);
      });
    }

    test('native mode (the frame leaves without its checksum state): a full checksum even for a partial one', () => {
      prog.setRstMode(C.HO_RST_XDP_FRAME);
      try {
        for (const s of [S4, S6]) {
          const inp = reply(s, { syn: true, ack: true }, { tcpOptions: SYN_ACK_OPTIONS, partialChecksum: true });
          const r = runCase(inp);
          assert.equal(r.action, XDP_TX);
          assertRst(inp, r.data, s, 14);
          assert.equal(checksum([...pseudoHeader(me(s), s.addr, 20), ...r.data.subarray(s === S6 ? 54 : 34)]), 0, 'full TCP checksum');
        }
      } finally {
        prog.setRstMode(C.HO_RST_XDP_SKB);
      }
    });

    test('a duplicate SYN+ACK (the backend retransmitting) is answered again', () => {
      table.clearResults();
      prog.testRun(reply(S4, { syn: true, ack: true }));
      const before = prog.counters();
      const r = prog.testRun(reply(S4, { syn: true, ack: true }, { tcpOptions: SYN_ACK_OPTIONS }));
      const after = prog.counters();
      assert.equal(r.retval, XDP_TX);
      assert.equal(after[C.HO_CNT_DUPLICATE] - before[C.HO_CNT_DUPLICATE], 1);
      assert.equal(after[C.HO_CNT_RST_SENT] - before[C.HO_CNT_RST_SENT], 1);
    });

    test('tc ignores the RST mode: a valid SYN+ACK goes on to the kernel unmodified (TCX_NEXT)', () => {
      for (const s of [S4, S6]) {
        const inp = reply(s, { syn: true, ack: true }, { tcpOptions: SYN_ACK_OPTIONS });
        const r = runCase(inp, 'tc');
        assert.equal(r.action, TCX_NEXT);
        assert.deepEqual(r.delta, { packets: 1, candidates: 1, synack: 1 });
        assert.equal(table.verdict(s.idx)?.state, C.HO_PROBE_STATE_OPEN);
        assert.ok(r.data.equals(inp), 'unmodified');
      }
    });

    const passCases: Array<{ name: string; pkt: () => Buffer; action: number }> = [
      { name: 'SYN+ACK with a wrong cookie → passed unchanged (not ours to reset)', pkt: () => tcpFrame({ src: S4.addr, dst: ME4, sport: S4.dport, dport: S4.sport, ack: (seqOf(S4) ^ 0x5a5a0000) + 1, flags: { syn: true, ack: true } }), action: XDP_PASS },
      { name: 'SYN+ACK under IPv4 options → passed, the kernel resets it', pkt: () => reply(S4, { syn: true, ack: true }, { ipOptions: 2 }), action: XDP_PASS },
      { name: 'RST+ACK → consumed as before', pkt: () => reply(S4, { rst: true, ack: true }), action: XDP_DROP },
    ];
    for (const c of passCases) {
      test(c.name, () => {
        const pkt = c.pkt();
        const r = runCase(pkt);
        assert.equal(r.action, c.action);
        assert.ok(r.data.equals(pkt), 'unmodified');
        assert.equal(r.delta.rst_sent, undefined);
      });
    }
  });

  for (const entry of ['xdp', 'tc'] as const) test(`${entry}: an index beyond the table is a bad cookie`, () => {
    const far: Slot = { idx: 1 << 20, addr: S4.addr, dport: S4.dport, sport: S4.sport };
    const r = runCase(reply(far, { syn: true, ack: true }), entry);
    assert.deepEqual(r.delta, { packets: 1, candidates: 1, bad_cookie: 1 });
  });
});

describe('two probers on one interface (another halfopen process: its own key and table)', { skip }, () => {
  // Both probe the same target from the same source port, the worst overlap.
  const KEY_B = Buffer.from('f0e0d0c0b0a090807060504030201000', 'hex');
  let a: NativeProgram, b: NativeProgram;
  let tables: ProbeTable[] = [];
  before(() => {
    a = new native.Program({ capacity: 16, key: KEY, sportLo: 61000, sportHi: 61999 });
    b = new native.Program({ capacity: 16, key: KEY_B, sportLo: 61000, sportHi: 61999 });
    tables = [a, b].map((p) => new ProbeTable(p.mapBuffer('probes'), p.mapBuffer('results')));
    for (const t of tables) t.set(S4.idx, mustParseAddress(S4.addr), S4.dport, S4.sport);
  });
  after(() => { a?.close(); b?.close(); });
  const seqB = (S4.idx ^ refCookie(KEY_B, S4.addr, S4.dport, S4.sport)) >>> 0;
  const replyToB = (flags: TcpSpec['flags']) => tcpFrame({ src: S4.addr, dst: ME4, sport: S4.dport, dport: S4.sport, seq: 1, ack: (seqB + 1) >>> 0, flags });

  for (const entry of ['xdp', 'tc'] as const) {
    test(`${entry}: B's RST passes A's program untouched and is consumed by B's`, () => {
      for (const t of tables) t.clearResults();
      const pkt = replyToB({ rst: true, ack: true });
      const ra = a.testRun(pkt, 1, entry);
      assert.equal(ra.retval, entry === 'xdp' ? XDP_PASS : TCX_NEXT, 'A hands it on');
      assert.ok(ra.data.equals(pkt));
      assert.deepEqual([...a.poll()], [], 'A records nothing');
      const rb = b.testRun(pkt, 1, entry);
      assert.equal(rb.retval, entry === 'xdp' ? XDP_DROP : TCX_DROP, 'B consumes its own');
      assert.deepEqual([...b.poll()], [S4.idx]);
    });
  }
});

describe('loading', { skip }, () => {
  test('loads while signals keep arriving (a CPU profiler\'s SIGPROF every 100 µs)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-prof-'));
    try {
      const addon = path.resolve(__dirname, '../../src/addon/addon.js');
      const code = `const { native } = require(${JSON.stringify(addon)}); for (let i = 0; i < 5; i++) new native.Program({ capacity: 65536, key: Buffer.alloc(16), sportLo: 61000, sportHi: 61999 }).close();`;
      const r = spawnSync(process.execPath, ['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', dir, '-e', code], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr.split('\n').find((l) => /Error|cannot/.test(l)));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('cookie and contract', () => {
  test('SipHash-2-4 matches the reference algorithm (key 00..0f, message 00..17)', { skip: false }, () => {
    const msg = Buffer.from([...Array(24).keys()]);
    assert.equal(native.siphash24(KEY, msg), 0xb8ad50c6f649af94n);
  });

  test('the test\'s own SipHash-2-4 gives the reference vectors (key 00..0f, messages 00..n-1)', () => {
    // From the reference implementation's vectors.h (64-bit outputs, read little-endian).
    const vectors: Array<[number, bigint]> = [[0, 0x726fdb47dd0e0e31n], [1, 0x74f839c593dc67fdn], [7, 0xab0200f58b01d137n], [8, 0x93f5f5799a932462n], [15, 0xa129ca6149be45e5n], [24, 0xb8ad50c6f649af94n]];
    for (const [n, want] of vectors) assert.equal(siphash24(KEY, Buffer.from([...Array(n).keys()])), want, `message of ${n} bytes`);
  });

  test('the product\'s cookie is the layout computed here: address, target port, source port', () => {
    const keys = [KEY, Buffer.from('f0e0d0c0b0a090807060504030201000', 'hex')];
    const probes: Array<[string, number, number]> = [['198.18.0.7', 80, 61003], ['2001:2::7', 443, 61005], ['198.18.255.254', 61003, 80], ['2001:2:0:ffff::1', 1, 65535]];
    for (const key of keys) for (const [addr, dport, sport] of probes) {
      assert.equal(native.cookie(key, Buffer.from(addressBytes(mustParseAddress(addr))), dport, sport), refCookie(key, addr, dport, sport), `${addr} ${dport} ${sport}`);
      // The ports are not interchangeable: a swapped layout would give another cookie.
      assert.notEqual(refCookie(key, addr, dport, sport), refCookie(key, addr, sport, dport));
    }
  });

  test('src/contract.generated.ts matches the BTF of bpf/halfopen.bpf.o', () => {
    const root = path.resolve(__dirname, '../../..');
    execFileSync(process.execPath, [path.join(root, 'scripts/gen-contract.js'), path.join(root, 'bpf/halfopen.bpf.o'), path.join(root, 'src/contract.generated.ts'), '--check'], { stdio: 'pipe' });
  });
});
