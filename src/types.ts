// Result vocabulary shared by the engine, the outputs and the health checker.

/** RTTs are reported in ms with three decimals (µs): finer digits are timer noise. */
export const roundMs = (ms: number): number => Math.round(ms * 1000) / 1000;

import type { ProbeStateName } from './contract.generated';

/** open | closed | filtered | unreachable: enum ho_probe_state of bpf/halfopen.h. */
export type ProbeState = ProbeStateName;

/** One final verdict, in the field order of the ndjson record (docs/sweep.md). */
export interface ProbeResult {
  ip: string;
  port: number;
  state: ProbeState;
  /** syn-ack | rst | no-response | icmp-<type>-<code> */
  reason: string;
  /** Round-trip time in milliseconds, null when no reply came. */
  rtt_ms: number | null;
  /** TTL (IPv4) or hop limit (IPv6) of the reply, null when no reply came. */
  ttl: number | null;
  /** ISO-8601 time the verdict was reached. */
  ts: string;
}
