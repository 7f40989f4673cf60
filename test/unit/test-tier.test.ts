// scripts/test-tier.js, the guard .ci/run puts around each tier: a tier whose
// every test was skipped, or that ran none, fails; a tier that ran and passed
// (individual skips included) passes; a failing tier keeps its exit code.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers/cli';

const TIER = path.join(ROOT, 'scripts', 'test-tier.js');

/** Runs a node --test file with `body` through the guard. */
function tier(body: string): { code: number | null; stderr: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ho-tier-'));
  try {
    const f = path.join(dir, 'x.test.js');
    fs.writeFileSync(f, `const { test } = require('node:test');\n${body}\n`);
    // Without NODE_TEST_CONTEXT the inner runner prints its own summary, as it does under .ci/run.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const r = spawnSync(process.execPath, [TIER, 'demo', '--', process.execPath, '--test', f], { encoding: 'utf8', env });
    return { code: r.status, stderr: r.stderr };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('scripts/test-tier.js', () => {
  test('every test skipped: the tier fails, naming each skip and why', () => {
    const r = tier(`test('a', { skip: 'needs root' }, () => {}); test('b', { skip: 'needs root' }, () => {});`);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /tier demo: every one of its 2 tests was skipped/);
    assert.match(r.stderr, /a: needs root/);
  });

  test('a command that exits 0 with no test summary: the tier fails', () => {
    const r = spawnSync(process.execPath, [TIER, 'demo', '--', process.execPath, '-e', 'process.stdout.write("built\\n")'], { encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /tier demo: ran no test/);
  });

  test('some tests run and pass, one skipped: the tier passes and lists the skip', () => {
    const r = tier(`test('runs', () => {}); test('fixture', { skip: 'the kernel refuses it (EINVAL)' }, () => {});`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /fixture: the kernel refuses it \(EINVAL\)/);
    assert.match(r.stderr, /tier demo: 1 passed, 0 failed, 1 skipped/);
  });

  test('a failing test: the tier fails with the runner\'s exit code', () => {
    const r = tier(`test('fails', () => { throw new Error('no'); });`);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /tier demo: failed \(exit 1\)/);
  });
});
