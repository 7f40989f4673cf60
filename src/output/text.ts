import type { ProbeResult } from '../types';
import type { ResultWriter } from './writer';

// Rows are written before the widest value is known, so widths are fixed at
// the maximum each column can hold: 39 is the longest IPv6 text, 11 is
// "unreachable"/"no-response", 16 fits "icmp-255-255" with room.
const W_ADDR = 39, W_PORT = 5, W_STATE = 11, W_REASON = 16;

const line = (addr: string, port: string, state: string, reason: string, rtt: string): string =>
  `${addr.padEnd(W_ADDR)}  ${port.padStart(W_PORT)}  ${state.padEnd(W_STATE)}  ${reason.padEnd(W_REASON)}  ${rtt}\n`;

export function textWriter(): ResultWriter {
  return {
    header: () => line('ADDRESS', 'PORT', 'STATE', 'REASON', 'RTT'),
    row: (r: ProbeResult) => line(r.ip, String(r.port), r.state, r.reason, r.rtt_ms === null ? '-' : `${r.rtt_ms.toFixed(3)} ms`),
    // The summary goes to stderr (formatSummaryLine), keeping stdout a pure table.
    footer: () => '',
  };
}
