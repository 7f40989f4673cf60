// One error class for everything halfopen reports. Tests and callers branch on
// `code`, never on the message. The native addon receives this class once at
// load time and throws instances of it, so kernel failures carry errno/syscall.

export type ErrorCode =
  | 'E_USAGE'        // bad command-line input or config value
  | 'E_TARGET'       // a target, port or exclude spec that does not parse
  | 'E_EMPTY'        // the target set is empty after excludes
  | 'E_PRIVILEGE'    // missing capability (CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW)
  | 'E_INTERFACE'    // unknown interface or no route to a target
  | 'E_RESOLVE'      // hostname did not resolve
  | 'E_BPF'          // libbpf/kernel failure (load, attach, map)
  | 'E_VERIFIER'     // the verifier rejected the program; `log` holds its output
  | 'E_SEND'         // the SYN sender failed
  | 'E_CONFIG'       // a config file is invalid
  | 'E_MERGE'        // `halfopen merge`: the shards do not make one complete sweep
  | 'E_BUSY'         // no on-demand probe slot is free (serve's /probe, the plugin socket)
  | 'E_INTERNAL';

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
