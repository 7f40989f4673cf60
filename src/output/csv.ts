import { roundMs, type ProbeResult } from '../types';
import { ResultWriter } from './writer';

export const CSV_HEADER = 'ip,port,state,reason,rtt_ms,ttl,ts';

// RFC 4180: quote only when needed, so ordinary rows stay grep-friendly.
function field(v: string | number | null): string {
  if (v === null) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvWriter(): ResultWriter {
  return {
    header: () => `${CSV_HEADER}\n`,
    row: (r: ProbeResult) =>
      `${field(r.ip)},${field(r.port)},${field(r.state)},${field(r.reason)},` +
      `${field(r.rtt_ms === null ? null : roundMs(r.rtt_ms))},${field(r.ttl)},${field(r.ts)}\n`,
    footer: () => '',
  };
}
