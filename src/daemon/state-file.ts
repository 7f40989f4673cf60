// `state_file`: what `halfopen serve` knows about each backend, kept across
// restarts so a restart neither flaps the fleet nor forgets a maintenance
// window (HAProxy's server-state-file). Written atomically (temporary file,
// fsync, rename) a second after changes and at shutdown; read at start,
// where a corrupt, foreign or stale file is one warning line and ignored.
import fs from 'node:fs';
import path from 'node:path';
import { AdminState, ADMIN_STATES, Backend } from './backend';
import { HealthState } from './health';
import { ProbeState } from '../types';

export const STATE_VERSION = 1;
/** A file older than this describes a fleet that has moved on: ignored. */
export const STATE_MAX_AGE_MS = 24 * 3600_000;

export interface SavedBackend {
  host: string;
  port: number;
  health: number;
  streak: number;
  reported: HealthState;
  admin: AdminState;
  since: number;
  changes: number;
  checks: number;
  counts: Record<ProbeState, number>;
  last: { ok: boolean; state: ProbeState; reason: string; rtt_ms: number | null; ts: number } | null;
}

export interface StateDoc { version: number; written: string; backends: Record<string, SavedBackend> }

export function snapshot(backends: Iterable<Backend>, now = Date.now()): StateDoc {
  const out: Record<string, SavedBackend> = {};
  for (const b of backends) {
    out[b.cfg.name] = {
      host: b.cfg.host, port: b.cfg.port, health: b.health.health, streak: b.health.streakValue, reported: b.reported,
      admin: b.admin, since: b.since, changes: b.changes, checks: b.checks, counts: { ...b.counts }, last: b.last && { ...b.last },
    };
  }
  return { version: STATE_VERSION, written: new Date(now).toISOString(), backends: out };
}

/** Writes doc to file atomically; throws on failure (the caller warns). */
export function writeState(file: string, doc: StateDoc): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, JSON.stringify(doc) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The saved backends, or a problem to report in one line (the file is then
 * ignored); null when there is no file yet.
 */
export function readState(file: string, now = Date.now()): { backends: Record<string, SavedBackend> } | { problem: string } | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? null : { problem: `cannot read ${file}: ${code ?? err}` };
  }
  let doc: unknown;
  try { doc = JSON.parse(text); } catch { return { problem: `${file} is not valid JSON` }; }
  if (!isObj(doc) || doc.version !== STATE_VERSION || typeof doc.written !== 'string' || !isObj(doc.backends))
    return { problem: `${file} is not a halfopen state file of version ${STATE_VERSION}` };
  const written = Date.parse(doc.written);
  if (!Number.isFinite(written) || written > now + 60_000) return { problem: `${file} was written in the future (${doc.written})` };
  if (now - written > STATE_MAX_AGE_MS) return { problem: `${file} is stale: written ${doc.written}, over ${STATE_MAX_AGE_MS / 3600_000} h ago` };
  for (const [name, s] of Object.entries(doc.backends)) {
    if (!isObj(s) || typeof s.host !== 'string' || typeof s.port !== 'number' || typeof s.health !== 'number' || !['up', 'down'].includes(s.reported as string)
      || !(ADMIN_STATES as readonly unknown[]).includes(s.admin) || typeof s.since !== 'number' || !isObj(s.counts))
      return { problem: `${file}: backend ${JSON.stringify(name)} is malformed` };
  }
  return { backends: doc.backends as Record<string, SavedBackend> };
}

/** Writes the state a second after changes (one write for a burst) and on flush(). */
export class StateWriter {
  private timer: NodeJS.Timeout | null = null;
  private failing = false;

  constructor(private readonly file: string, private readonly backends: () => Iterable<Backend>, private readonly warn: (m: string) => void) {}

  changed(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => { this.timer = null; this.flush(); }, 1000);
    this.timer.unref();
  }

  flush(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    try {
      writeState(this.file, snapshot(this.backends()));
      if (this.failing) this.warn(`state file ${this.file} written again`);
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.warn(`cannot write the state file ${this.file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
      this.failing = true;
    }
  }
}
