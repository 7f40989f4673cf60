import { roundMs, type ProbeResult } from '../types';
import { ResultWriter } from './writer';

const NEEDS_ESCAPE = /["\\\u0000-\u001f\u2028\u2029]/;
const str = (s: string): string => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`);

/** One JSON object per line, keys in ProbeResult order (the ndjson contract). */
export function ndjsonWriter(): ResultWriter {
  return {
    header: () => '',
    // Built by hand to pin the key order and skip an intermediate object per row.
    // This is the hot path of big sweeps, and JSON.stringify per field costs.
    // ip (an address in text form), state (an enum) and ts (ISO-8601) never
    // hold a character JSON escapes and are quoted as they are; reason is checked.
    row: (r: ProbeResult) =>
      `{"ip":"${r.ip}","port":${r.port},"state":"${r.state}","reason":${str(r.reason)},` +
      `"rtt_ms":${r.rtt_ms === null ? 'null' : roundMs(r.rtt_ms)},"ttl":${r.ttl},"ts":"${r.ts}"}\n`,
    footer: () => '',
  };
}
