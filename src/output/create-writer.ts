import { usageError } from '../errors';
import { csvWriter } from './csv';
import { grepableWriter } from './grepable';
import { ndjsonWriter } from './ndjson';
import { textWriter } from './text';
import type { ResultWriter, WriterOptions } from './writer';
import { xmlWriter } from './xml';

export const OUTPUT_FORMATS = ['text', 'ndjson', 'csv', 'grepable', 'xml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export const isOutputFormat = (s: string): s is OutputFormat => (OUTPUT_FORMATS as readonly string[]).includes(s);

/** `--format`; throws E_USAGE listing the accepted names. */
export function parseFormat(s: string): OutputFormat {
  if (!isOutputFormat(s)) throw usageError(`invalid format "${s}": expected one of ${OUTPUT_FORMATS.join(', ')}`);
  return s;
}

export function createWriter(format: OutputFormat, opts: WriterOptions = {}): ResultWriter {
  switch (format) {
    case 'text': return textWriter();
    case 'ndjson': return ndjsonWriter();
    case 'csv': return csvWriter();
    case 'grepable': return grepableWriter(opts);
    case 'xml': return xmlWriter(opts);
    default: throw usageError(`invalid format "${String(format)}"`);
  }
}
