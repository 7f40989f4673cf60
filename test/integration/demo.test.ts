// `halfopen demo` builds its fleet, sweeps it, and removes everything again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { netnsSkipReason } from '../helpers/privileges';
import { startCli, collect } from '../helpers/cli';

test('demo: exact verdicts, no connections, nothing left behind', { skip: netnsSkipReason() }, async () => {
  const child = startCli(['demo']);
  const pid = child.pid!;
  const r = await collect(child, 60_000);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /ground truth: 1536\/1536 verdicts correct/);
  assert.match(r.stdout, /0 accepted connections, 0 half-open \(SYN-RECV\) sockets left/);
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith(`ho${pid}x`));
  assert.deepEqual(left, []);
});
