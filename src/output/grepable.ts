import type { ProbeResult } from '../types';
import type { SweepSummary } from './summary';
import { commandLine, ResultWriter, WriterOptions } from './writer';

// Fields are '/'-separated and records tab/newline-separated; nmap replaces
// '/' inside a field with '|', and so do we.
const clean = (s: string): string => s.replace(/\//g, '|').replace(/[\t\r\n]/g, ' ');

/** nmap -oG style: one `Host:` line per result. */
export function grepableWriter(opts: WriterOptions = {}): ResultWriter {
  return {
    header: () => {
      const start = (opts.startTime ?? new Date()).toISOString();
      const version = opts.version ? ` ${opts.version}` : '';
      return `# halfopen${version} scan initiated ${start} as: ${commandLine(opts)}\n`;
    },
    row: (r: ProbeResult) => `Host: ${r.ip} ()\tPorts: ${r.port}/${r.state}/tcp//${clean(r.reason)}///\n`,
    footer: (s: SweepSummary) => {
      const c = s.counts;
      return (
        `# halfopen done at ${s.endTime} -- ${s.probes} probes ` +
        `(${c.open} open, ${c.closed} closed, ${c.filtered} filtered, ${c.unreachable} unreachable) ` +
        `scanned in ${s.elapsedSeconds.toFixed(2)} seconds\n`
      );
    },
  };
}
