// The README's layout table is the map a newcomer reads first: every folder of
// the repository must be in it, and everything in it must exist. Folders of
// src/, native/ and test/ each need a row of their own; elsewhere a row for a
// folder covers what is below it. Build output and dependencies are not part
// of the repository and are skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.join(__dirname, '..', '..', '..');
const SKIP = new Set(['.git', 'node_modules', 'dist', 'build', 'tmp', 'screenshots']);
const OWN_ROWS = ['src', 'native', 'test'];

function layoutPaths(): string[] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Layout');
  assert.ok(start >= 0, 'README has a Layout section');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const rows = section.split('\n').filter((l) => /^\| `/.test(l));
  return rows.flatMap((r) => [...r.split('|')[1].matchAll(/`([^`]+)`/g)].map((m) => m[1].replace(/ \(files\)$/, '')));
}

function folders(): string[] {
  const out: string[] = [];
  const walk = (rel: string, depth: number) => {
    for (const e of fs.readdirSync(path.join(ROOT, rel), { withFileTypes: true })) {
      if (!e.isDirectory() || SKIP.has(e.name)) continue;
      const p = rel ? `${rel}/${e.name}` : e.name;
      out.push(p);
      if (depth < 1) walk(p, depth + 1);
    }
  };
  walk('', 0);
  return out;
}

test("every folder is in the README's layout table, and every path there exists", () => {
  const listed = layoutPaths().map((p) => p.replace(/\/$/, ''));
  assert.ok(listed.length >= 10, `rows found: ${listed.join(', ')}`);
  for (const p of listed) assert.ok(fs.existsSync(path.join(ROOT, p)), `the layout table names ${p}, which does not exist`);
  for (const f of folders()) {
    const [top] = f.split('/');
    const needsOwn = f.includes('/') && OWN_ROWS.includes(top);
    const covered = needsOwn ? listed.includes(f) : listed.some((p) => p === f || p === top || p.startsWith(`${f}/`));
    assert.ok(covered, `${f}/ is missing from the README's layout table`);
  }
});

test('every relative link in the README and docs/ reaches a file', () => {
  const pages = ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  for (const page of pages) {
    const text = fs.readFileSync(path.join(ROOT, page), 'utf8');
    for (const m of text.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
      if (/^[a-z]+:/.test(m[1])) continue; // http:, https:, mailto:
      const target = path.join(ROOT, path.dirname(page), m[1]);
      assert.ok(fs.existsSync(target), `${page} links to ${m[1]}, which does not exist`);
    }
  }
});
