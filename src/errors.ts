// One error class for everything halfopen reports. Tests and callers branch on
// `code`, never on the message. The native addon receives this class once at
// load time and throws instances of it, so kernel failures carry errno/syscall.

// The codes are enum ho_error of bpf/halfopen.h, which the addon and the
// native plugin throw and print too: what each means is said there.
export type { ErrorCode } from './contract.generated';
import type { ErrorCode } from './contract.generated';

export class HalfopenError extends Error {
  readonly code: ErrorCode;
  errno?: number;
  syscall?: string;
  /** Verifier log, for E_VERIFIER. */
  log?: string;

  constructor(code: ErrorCode, message: string, extra: { errno?: number; syscall?: string; log?: string } = {}) {
    super(message);
    this.name = 'HalfopenError';
    this.code = code;
    if (extra.errno !== undefined) this.errno = extra.errno;
    if (extra.syscall !== undefined) this.syscall = extra.syscall;
    if (extra.log !== undefined) this.log = extra.log;
  }
}

export const usageError = (message: string): HalfopenError => new HalfopenError('E_USAGE', message);
export const targetError = (message: string): HalfopenError => new HalfopenError('E_TARGET', message);

/** Plain record that crosses worker-thread boundaries (structured clone drops Error fields). */
export interface ErrorRecord { ok: false; code: ErrorCode; message: string; errno?: number; syscall?: string }

export function toRecord(err: unknown): ErrorRecord {
  if (err instanceof HalfopenError) return { ok: false, code: err.code, message: err.message, errno: err.errno, syscall: err.syscall };
  const e = err as { message?: string; errno?: number; syscall?: string };
  return { ok: false, code: 'E_INTERNAL', message: String(e?.message ?? err), errno: e?.errno, syscall: e?.syscall };
}

export function fromRecord(rec: ErrorRecord): HalfopenError {
  return new HalfopenError(rec.code, rec.message, { errno: rec.errno, syscall: rec.syscall });
}
