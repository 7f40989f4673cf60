import { roundMs, type ProbeResult } from '../types';
import { formatSummaryLine, SweepSummary } from './summary';
import { commandLine, ResultWriter, unixSeconds, WriterOptions } from './writer';

const ENTITIES: Record<string, string> = {
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;',
  // Attribute-value normalisation would turn raw whitespace into spaces.
  '\t': '&#9;', '\n': '&#10;', '\r': '&#13;',
};

// Characters XML 1.0 forbids even as references (C0 controls, lone surrogates,
// U+FFFE/U+FFFF) become U+FFFD so the document stays well-formed.
const ESCAPE = /[&<>"'\t\n\r]|[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udfff]/gu;

/** Text safe inside a double- or single-quoted XML attribute. */
export const xmlAttr = (s: string): string => s.replace(ESCAPE, (ch) => ENTITIES[ch] ?? '\ufffd');

const attrs = (pairs: Array<[string, string | number | null | undefined]>): string =>
  pairs.filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => ` ${k}="${xmlAttr(String(v))}"`).join('');

/** nmap-like XML; each host element is one line so the stream stays line-oriented. */
export function xmlWriter(opts: WriterOptions = {}): ResultWriter {
  return {
    header: () => {
      const start = opts.startTime ?? new Date();
      return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' +
        `<halfopenrun${attrs([
          ['scanner', 'halfopen'],
          ['args', commandLine(opts)],
          ['start', unixSeconds(start)],
          ['startstr', start.toISOString()],
          ['version', opts.version],
          ['xmloutputversion', '1.0'],
        ])}>\n`
      );
    },
    row: (r: ProbeResult) =>
      `<host${attrs([['ts', r.ts]])}>` +
      `<address${attrs([['addr', r.ip], ['addrtype', r.ip.includes(':') ? 'ipv6' : 'ipv4']])}/>` +
      `<ports><port${attrs([['protocol', 'tcp'], ['portid', r.port]])}>` +
      `<state${attrs([['state', r.state], ['reason', r.reason], ['reason_ttl', r.ttl]])}/>` +
      `</port></ports>` +
      (r.rtt_ms === null ? '' : `<times${attrs([['rtt_ms', roundMs(r.rtt_ms)]])}/>`) +
      `</host>\n`,
    footer: (s: SweepSummary) => {
      const end = new Date(s.endTime);
      return (
        `<runstats><finished${attrs([
          ['time', Number.isNaN(end.getTime()) ? null : unixSeconds(end)],
          ['timestr', s.endTime],
          ['elapsed', s.elapsedSeconds.toFixed(2)],
          ['summary', formatSummaryLine(s)],
        ])}/>` +
        `<probes${attrs([
          ['total', s.probes],
          ['open', s.counts.open],
          ['closed', s.counts.closed],
          ['filtered', s.counts.filtered],
          ['unreachable', s.counts.unreachable],
          ['sent', s.sent],
          ['retries', s.retries],
          ['duplicates', s.duplicates],
          ['invalid', s.invalid],
          ['rate', Math.round(s.probesPerSecond)],
        ])}/></runstats>\n` +
        '</halfopenrun>\n'
      );
    },
  };
}
