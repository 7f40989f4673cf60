import { roundMs, type ProbeResult } from '../types';
import { ResultWriter } from './writer';

const NEEDS_ESCAPE = /["\\\u0000-\u001f\u2028\u2029]/;
const str = (s: string): string => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`);

/** One JSON object per line, keys in ProbeResult order (the ndjson contract). */
export function ndjsonWriter(): ResultWriter {
  return {
    header: () => '',
    // Built by hand to pin the key order and skip an intermediate object per row.
    // Strings are quoted directly unless they hold something JSON must escape:
    // this is the hot path of big sweeps, and JSON.stringify per field costs.
    row: (r: ProbeResult) =>
      `{"ip":${str(r.ip)},"port":${r.port},"state":${str(r.state)},"reason":${str(r.reason)},` +
      `"rtt_ms":${r.rtt_ms === null ? 'null' : roundMs(r.rtt_ms)},"ttl":${r.ttl},"ts":${str(r.ts)}}\n`,
    footer: () => '',
  };
}
