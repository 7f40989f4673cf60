// TypeScript's side of the shared tables (maps `probes` and `results`),
// mmapped by the addon: writes probes, reads verdicts, no copies.
import { HO_PROBE, HO_RESULT, HO_FAMILY_INET, HO_FAMILY_INET6, HO_RESULT_PENDING, HO_PROBE_STATE_UNREACHABLE, PROBE_STATES, RECORDED_REASON } from '../contract.generated';
import { formatAddress, isV4 } from '../targets/address';
import { roundMs, type ProbeResult, type ProbeState } from '../types';

export interface Verdict {
  state: number;
  /** Reply minus latest send, in ms; null if unknown. */
  rttMs: number | null;
  ttl: number;
  icmpType: number;
  icmpCode: number;
  replies: number;
}

/** A recorded state (enum ho_probe_state) as text: one mapping for sweeps and health checks. */
export function stateName(state: number): Exclude<ProbeState, 'filtered'> {
  return PROBE_STATES[state - 1] as Exclude<ProbeState, 'filtered'>;
}

/** The reason that goes with a recorded state (ICMP type and code for unreachable). */
export function reasonOf(state: number, icmpType: number, icmpCode: number): string {
  return state === HO_PROBE_STATE_UNREACHABLE ? `icmp-${icmpType}-${icmpCode}` : RECORDED_REASON[state];
}

/** A recorded verdict in the result vocabulary (state, reason, RTT rounded to µs). */
export function describeVerdict(v: Verdict): { state: Exclude<ProbeState, 'filtered'>; reason: string; rttMs: number | null } {
  return { state: stateName(v.state), reason: reasonOf(v.state, v.icmpType, v.icmpCode), rttMs: v.rttMs === null ? null : roundMs(v.rttMs) };
}

export class ProbeTable {
  readonly capacity: number;
  private readonly probes: Uint8Array;
  private readonly probeView: DataView;
  private readonly results: Uint8Array;
  private readonly resultView: DataView;

  constructor(probes: ArrayBuffer, results: ArrayBuffer) {
    this.capacity = Math.floor(probes.byteLength / HO_PROBE.size);
    this.probes = new Uint8Array(probes);
    this.probeView = new DataView(probes);
    this.results = new Uint8Array(results);
    this.resultView = new DataView(results);
  }

  /** Writes slot i. addr is the 128-bit (IPv4-mapped for v4) address. */
  set(i: number, addr: bigint, dport: number, sport: number): void {
    if (isV4(addr)) return this.setV4(i, Number(addr & 0xffff_ffffn), dport, sport);
    const o = i * HO_PROBE.size;
    const v = this.probeView;
    // Network order: most significant 32-bit word first.
    v.setUint32(o, Number((addr >> 96n) & 0xffff_ffffn));
    v.setUint32(o + 4, Number((addr >> 64n) & 0xffff_ffffn));
    v.setUint32(o + 8, Number((addr >> 32n) & 0xffff_ffffn));
    v.setUint32(o + 12, Number(addr & 0xffff_ffffn));
    v.setUint16(o + HO_PROBE.dport.offset, dport);
    v.setUint16(o + HO_PROBE.sport.offset, sport);
    v.setUint8(o + HO_PROBE.family.offset, isV4(addr) ? HO_FAMILY_INET : HO_FAMILY_INET6);
  }

  /** Fast path for IPv4: a is the 32-bit address. */
  setV4(i: number, a: number, dport: number, sport: number): void {
    const o = i * HO_PROBE.size;
    const v = this.probeView;
    v.setUint32(o, 0);
    v.setUint32(o + 4, 0);
    v.setUint32(o + 8, 0xffff);
    v.setUint32(o + 12, a);
    v.setUint16(o + HO_PROBE.dport.offset, dport);
    v.setUint16(o + HO_PROBE.sport.offset, sport);
    v.setUint8(o + HO_PROBE.family.offset, HO_FAMILY_INET);
  }

  /** New source port for slot i and a cleared verdict: the next round of a health check. */
  rearm(i: number, sport: number): void {
    this.results.fill(0, i * HO_RESULT.size, (i + 1) * HO_RESULT.size);
    this.probeView.setUint16(i * HO_PROBE.size + HO_PROBE.sport.offset, sport);
  }

  /** Marks slots [from, to) unused and clears their verdicts. */
  clear(from = 0, to = this.capacity): void {
    this.probes.fill(0, from * HO_PROBE.size, to * HO_PROBE.size);
    this.results.fill(0, from * HO_RESULT.size, to * HO_RESULT.size);
  }

  /** Clears verdicts only (a new round of checks on the same probes). */
  clearResults(from = 0, to = this.capacity): void {
    this.results.fill(0, from * HO_RESULT.size, to * HO_RESULT.size);
  }

  state(i: number): number {
    return this.resultView.getUint32(i * HO_RESULT.size + HO_RESULT.state.offset, true);
  }

  /**
   * Slot i's verdict as a result row, read straight from the table: the
   * sweep's hot path (no Verdict in between). Null while there is none.
   */
  result(i: number, ts: string): ProbeResult | null {
    const o = i * HO_RESULT.size;
    const v = this.resultView;
    const state = v.getUint32(o + HO_RESULT.state.offset, true);
    if (state === HO_RESULT_PENDING) return null;
    const rtt = this.rttMs(o);
    return {
      ip: this.ip(i), port: this.port(i), state: stateName(state),
      reason: reasonOf(state, v.getUint8(o + HO_RESULT.icmp_type.offset), v.getUint8(o + HO_RESULT.icmp_code.offset)),
      rtt_ms: rtt === null ? null : roundMs(rtt), ttl: v.getUint8(o + HO_RESULT.ttl.offset), ts,
    };
  }

  /** Reply minus latest send of the result at byte offset o, ms; null when unknown. */
  private rttMs(o: number): number | null {
    const v = this.resultView;
    const s = HO_RESULT.sent_ns.offset, r = HO_RESULT.reply_ns.offset;
    const diffNs = (v.getUint32(o + r + 4, true) - v.getUint32(o + s + 4, true)) * 2 ** 32 +
      (v.getUint32(o + r, true) - v.getUint32(o + s, true));
    // A reply older than the latest send answered an earlier SYN: RTT unknown.
    return v.getUint32(o + s, true) === 0 && v.getUint32(o + s + 4, true) === 0 || diffNs < 0 ? null : diffNs / 1e6;
  }

  verdict(i: number): Verdict | null {
    const o = i * HO_RESULT.size;
    const v = this.resultView;
    const state = v.getUint32(o + HO_RESULT.state.offset, true);
    if (state === HO_RESULT_PENDING) return null;
    return {
      state,
      rttMs: this.rttMs(o),
      ttl: v.getUint8(o + HO_RESULT.ttl.offset),
      icmpType: v.getUint8(o + HO_RESULT.icmp_type.offset),
      icmpCode: v.getUint8(o + HO_RESULT.icmp_code.offset),
      replies: v.getUint32(o + HO_RESULT.replies.offset, true),
    };
  }

  /** Text form of slot i's address, without a bigint for IPv4 (the hot path). */
  ip(i: number): string {
    const o = i * HO_PROBE.size;
    if (this.probes[o + HO_PROBE.family.offset] === HO_FAMILY_INET) {
      const p = this.probes;
      return `${p[o + 12]}.${p[o + 13]}.${p[o + 14]}.${p[o + 15]}`;
    }
    return formatAddress(this.address(i));
  }

  port(i: number): number {
    return this.probeView.getUint16(i * HO_PROBE.size + HO_PROBE.dport.offset);
  }

  /** The address stored in slot i. */
  address(i: number): bigint {
    const o = i * HO_PROBE.size;
    let a = 0n;
    for (let k = 0; k < 16; k += 4) a = (a << 32n) | BigInt(this.probeView.getUint32(o + k));
    return a;
  }
}
