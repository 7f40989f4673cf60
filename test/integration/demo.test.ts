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

test('demo: Ctrl-C in the watch phase stops it at once, removes the fleet and exits 130', { skip: netnsSkipReason() }, async () => {
  const child = startCli(['demo']);
  const pid = child.pid!;
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  const done = collect(child, 60_000);
  for (let i = 0; i < 400 && !/\+\d+\.\d s {2}web2's listener stops/.test(out) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(out, /web2's listener stops/, 'the watch phase began');
  child.kill('SIGINT');
  const t0 = Date.now();
  const r = await done;
  const ms = Date.now() - t0;
  assert.equal(r.code, 130, r.stdout + r.stderr);
  // The README promises serve stops within 1.5 s of a signal; the demo waits for nothing more.
  assert.ok(ms < 5000, `exited ${ms} ms after SIGINT`);
  assert.doesNotMatch(r.stdout.slice(r.stdout.indexOf("web2's listener stops")), /listener is back/, 'nothing played on after Ctrl-C');
  assert.match(r.stdout, /removed namespaces/);
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith(`ho${pid}x`));
  assert.deepEqual(left, []);
});
