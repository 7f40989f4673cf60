// BPF programs and links held by one process, read from its file
// descriptors (/proc/PID/fdinfo names the prog_id or link_id behind each).
// Tests ask about the halfopen they started, not about every halfopen on the
// machine: other runs may share it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/** Ids of the programs (or links) whose fd `pid` holds. */
export function heldBy(kind: 'prog' | 'link', pid: number): number[] {
  const key = kind === 'prog' ? 'prog_id' : 'link_id';
  const ids = new Set<number>();
  let fds: string[] = [];
  try { fds = fs.readdirSync(`/proc/${pid}/fdinfo`); } catch { return []; }
  for (const fd of fds) {
    let info = '';
    try { info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'); } catch { continue; }
    // A link's fdinfo names its program too: count each kind by its own key.
    if (kind === 'prog' && /^link_id:/m.test(info)) continue;
    const m = new RegExp(`^${key}:\\s*(\\d+)`, 'm').exec(info);
    if (m) ids.add(Number(m[1]));
  }
  return [...ids];
}

/** Whether any of `ids` still exists. */
export function anyLeft(kind: 'prog' | 'link', ids: number[]): boolean {
  let now: Array<{ id: number }> = [];
  try {
    now = JSON.parse(execFileSync('bpftool', ['-j', kind, 'show'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  } catch {
    return true; // an object went away while bpftool listed them: ask again
  }
  const set = new Set(now.map((o) => o.id));
  return ids.some((id) => set.has(id));
}
