import type { ProbeResult } from '../types';
import { ResultWriter, roundMs } from './writer';

const q = JSON.stringify;

/** One JSON object per line, keys in ProbeResult order (the ndjson contract). */
export function ndjsonWriter(): ResultWriter {
  return {
    header: () => '',
    // Built by hand to pin the key order and skip an intermediate object per row.
    row: (r: ProbeResult) =>
      `{"ip":${q(r.ip)},"port":${q(r.port)},"state":${q(r.state)},"reason":${q(r.reason)},` +
      `"rtt_ms":${r.rtt_ms === null ? 'null' : q(roundMs(r.rtt_ms))},"ttl":${q(r.ttl)},"ts":${q(r.ts)}}\n`,
    footer: () => '',
  };
}
