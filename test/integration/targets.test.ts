// Sweep inputs end to end: every target syntax, excludes, seeds and shards,
// against a namespace fleet (hostnames resolve through the prober
// namespace's own hosts file).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet } from '../../src/fleet/fleet';
import { mustParseAddress } from '../../src/targets/address';
import { netnsSkipReason } from '../helpers/privileges';
import { runCli, parseNdjson } from '../helpers/cli';

const skip = netnsSkipReason();

describe('sweep target syntax, excludes, seeds and shards', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  before(async () => {
    fleet = await Fleet.create({
      tag: 'targets', v4: '198.18.0.0/24', v6: '2001:2::/120', open: [80],
      hosts: { 'backend-a.test': ['198.18.0.50'], 'dual.test': ['198.18.0.60', '2001:2::60'] },
    });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-targets-'));
  });
  after(() => {
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const keys = (stdout: string) => parseNdjson(stdout).map((r) => `${r.ip} ${r.port}`).sort();
  const sweep = async (args: string[]) => {
    const r = await runCli(['sweep', ...args, '--format', 'ndjson', '--timeout', '300', '--no-progress'], fleet);
    assert.equal(r.code, 0, r.stderr);
    for (const x of parseNdjson(r.stdout)) assert.equal(x.state, fleet.truth(mustParseAddress(x.ip), x.port), `${x.ip}:${x.port}`);
    return r;
  };

  test('address, CIDR, range, host:port, [v6]:port, hostname, hostname:port and -iL in one run', async () => {
    const file = path.join(dir, 'targets.txt');
    fs.writeFileSync(file, '# backends\n198.18.0.100  # trailing comment\n\n2001:2::a0-2001:2::a1\n');
    const r = await sweep(['198.18.0.1', '198.18.0.8/30', '198.18.0.20-198.18.0.21', '198.18.0.30:81', '[2001:2::5]:80',
      'backend-a.test', 'dual.test:81', '-iL', file, '-p', '80']);
    assert.deepEqual(keys(r.stdout), [
      '198.18.0.1 80', '198.18.0.10 80', '198.18.0.100 80', '198.18.0.11 80', '198.18.0.20 80', '198.18.0.21 80',
      '198.18.0.30 81', '198.18.0.50 80', '198.18.0.60 81', '198.18.0.8 80', '198.18.0.9 80',
      '2001:2::5 80', '2001:2::60 81', '2001:2::a0 80', '2001:2::a1 80',
    ]);
  });

  test('duplicates are probed once', async () => {
    const r = await sweep(['198.18.0.1', '198.18.0.0/31', '198.18.0.1:80', 'backend-a.test', '198.18.0.50', '-p', '80']);
    assert.deepEqual(keys(r.stdout), ['198.18.0.0 80', '198.18.0.1 80', '198.18.0.50 80']);
  });

  test('--exclude and --exclude-file remove addresses, ranges and pairs', async () => {
    const file = path.join(dir, 'exclude.txt');
    fs.writeFileSync(file, '198.18.0.4\n# comment\n198.18.0.8/29\n');
    const r = await sweep(['198.18.0.0/28', '198.18.0.2:81', '-p', '80', '--exclude', '198.18.0.0-198.18.0.2,198.18.0.15', '--exclude-file', file]);
    assert.deepEqual(keys(r.stdout), ['198.18.0.3 80', '198.18.0.5 80', '198.18.0.6 80', '198.18.0.7 80']);
  });

  test('the same --seed gives the same probe order, another seed another order', async () => {
    const list = async (seed: string) => (await runCli(['sweep', '198.18.0.0/24', '2001:2::/120', '-p', '80,81', '--seed', seed, '--dry-run'], fleet)).stdout;
    const a = await list('42'), b = await list('42'), c = await list('43');
    assert.equal(a.split('\n').filter(Boolean).length, 1024);
    assert.equal(a, b);
    assert.notEqual(a, c);
    assert.deepEqual(a.split('\n').sort(), c.split('\n').sort(), 'same probes, different order');
  });

  test('shards of one seed partition the sweep: union is everything, pairwise disjoint', async () => {
    const args = ['198.18.0.0/24', '2001:2::/120', '-p', '80,81', '--seed', '7'];
    const whole = keys((await sweep(args)).stdout);
    const shards: string[][] = [];
    for (let i = 1; i <= 3; i++) shards.push(keys((await sweep([...args, '--shard', `${i}/3`])).stdout));
    const union = shards.flat();
    assert.equal(union.length, whole.length, 'no overlap');
    assert.deepEqual([...union].sort(), whole);
    for (const s of shards) assert.ok(Math.abs(s.length - whole.length / 3) <= 1, 'balanced');
    // The dry-run order of a shard is every third position of the whole order.
    const order = (await runCli(['sweep', ...args, '--dry-run'], fleet)).stdout.split('\n').filter(Boolean);
    const second = (await runCli(['sweep', ...args, '--shard', '2/3', '--dry-run'], fleet)).stdout.split('\n').filter(Boolean);
    assert.deepEqual(second, order.filter((_, i) => i % 3 === 1));
  });

  test('--open -o FILE: only open ports, in the file, with --progress on stderr', async () => {
    const file = path.join(dir, 'open.csv');
    const r = await runCli(['sweep', '198.18.0.0/28', '-p', '80,81', '--open', '-o', file, '--format', 'csv', '--timeout', '300', '--progress'], fleet);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(lines[0], 'ip,port,state,reason,rtt_ms,ttl,ts');
    assert.equal(lines.length, 1 + 16);
    for (const l of lines.slice(1)) assert.match(l, /^198\.18\.0\.\d+,80,open,syn-ack,/);
    assert.match(r.stderr, /16 open, 16 closed/);
  });

  test('a hostname that does not resolve is a usage error', async () => {
    const r = await runCli(['sweep', 'no-such-host.invalid', '-p', '80'], fleet);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cannot resolve "no-such-host\.invalid"/);
  });
});
