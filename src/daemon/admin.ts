// The admin API's gate: PUT /backends/NAME/admin exists only when
// admin.token_file is configured, and then needs `Authorization: Bearer
// TOKEN`. Tokens are compared as SHA-256 digests with timingSafeEqual, so the
// comparison takes the same time whatever the guess; refusals are logged at
// most once every 10 s with a count of those not shown (refusalLog).
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { HalfopenError } from '../errors';
import { RateLimitedLog, refusalLog } from './rate-limited-log';

/** Longest body accepted: "maintenance" with room; anything larger is refused unread. */
export const ADMIN_BODY_MAX = 64;

const digest = (s: string | Buffer) => crypto.createHash('sha256').update(s).digest();

/** Reads the token (first line, trimmed); a missing, empty or world-readable file is one line. */
export function loadToken(file: string, warn: (m: string) => void): Buffer {
  let text: string;
  let mode = 0;
  try {
    text = fs.readFileSync(file, 'utf8');
    mode = fs.statSync(file).mode;
  } catch (err) {
    throw new HalfopenError('E_CONFIG', `admin.token_file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  const token = text.split('\n')[0].trim();
  if (token.length < 16) throw new HalfopenError('E_CONFIG', `admin.token_file ${file}: expected a token of at least 16 characters on its first line`);
  if (mode & 0o004) warn(`admin.token_file ${file} is readable by every user (chmod 600 it)`);
  return digest(token);
}

export type AdminVerdict = { ok: true } | { ok: false; status: number; error: string; headers?: Record<string, string> };

export class AdminGate {
  private readonly refusals: RateLimitedLog;

  /** `token`: the token's digest, or null when the admin API is off. */
  constructor(private readonly token: Buffer | null, log: (m: string) => void) {
    this.refusals = refusalLog(log);
  }

  get enabled(): boolean { return this.token !== null; }

  check(req: http.IncomingMessage): AdminVerdict {
    if (!this.token) return { ok: false, status: 404, error: 'the admin API is off (set admin.token_file)' };
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m) return this.refuse(req, 401, 'missing bearer token', { 'www-authenticate': 'Bearer realm="halfopen"' });
    if (!crypto.timingSafeEqual(digest(m[1]), this.token)) return this.refuse(req, 403, 'wrong token');
    return { ok: true };
  }

  private refuse(req: http.IncomingMessage, status: number, error: string, headers?: Record<string, string>): AdminVerdict {
    this.refusals.write(`admin: refused ${req.method} ${req.url} from ${req.socket.remoteAddress}: ${error}`);
    return { ok: false, status, error, headers };
  }
}

/** Reads a request body of at most `max` bytes; null when it is longer. */
export function readBody(req: http.IncomingMessage, max: number): Promise<string | null> {
  return new Promise((resolve) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) { resolve(null); req.resume(); return; }
    let body = '';
    let over = false;
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      if (over) return;
      body += d;
      if (Buffer.byteLength(body) > max) { over = true; resolve(null); }
    });
    req.on('end', () => { if (!over) resolve(body); });
    req.on('error', () => resolve(null));
  });
}
