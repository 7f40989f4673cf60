// Sweeps that a typo cannot turn into an Internet scan, and that end when
// the network says so (issue 23), on real namespace fleets:
// - 0.0.0.0/0 -p 80 refuses with one line and sends nothing;
// - --allow-large --dry-run shows the default exclusions applied, and sends nothing;
// - a /16 with 6.6 % silent and the default timeout (auto) is exact, and waits
//   what the run record says it chose;
// - replies delayed by 20-250 ms are still all caught, while a fixed 100 ms
//   timeout misses them (the test can fail).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { Fleet, FleetSpec } from '../../src/fleet/fleet';
import { assertExact } from '../helpers/lab';
import { mustParseAddress } from '../../src/targets/address';
import { specialRangeOf } from '../../src/targets/special-ranges';
import { netnsSkipReason } from '../helpers/privileges';
import { runCli, startCli, parseNdjson } from '../helpers/cli';
import { delayedReplies } from '../helpers/delayed';

const skip = netnsSkipReason();

/** 17 of the /16's 256 /24s dropped: 4,352 of 65,536 addresses (6.64 %) silent. */
const SILENT = Array.from({ length: 17 }, (_, k) => `198.18.${7 + 15 * k}.0/24`);
const SPEC: FleetSpec = { tag: 'guard', v4: '198.18.0.0/16', open: [80], drop: SILENT };

/**
 * TCP packets that reached the fleet, by any send path (raw socket or
 * AF_PACKET: both arrive through the veth and the fleet's prerouting), from
 * an nft counter installed by countFleetTcp(). The veth's own counters also
 * move with IPv6 neighbour and listener traffic, so they cannot say "nothing".
 */
const COUNT_TABLE = 'ho_guard_count';
function countFleetTcp(fleet: Fleet): void {
  fleet.exec('fleet', 'nft', ['add table inet ' + COUNT_TABLE]);
  fleet.exec('fleet', 'nft', ['add chain inet ' + COUNT_TABLE + ' pre { type filter hook prerouting priority -300; }']);
  fleet.exec('fleet', 'nft', ['add rule inet ' + COUNT_TABLE + ' pre meta l4proto tcp counter']);
}
function fleetTcp(fleet: Fleet): number {
  const m = /counter packets (\d+)/.exec(fleet.exec('fleet', 'nft', ['list', 'chain', 'inet', COUNT_TABLE, 'pre']));
  return Number(m![1]);
}
const linkCounters = (fleet: Fleet) => ({ fleetTcp: fleetTcp(fleet) });

describe('sweep guard rails and --timeout auto', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  before(async () => {
    fleet = await Fleet.create(SPEC);
    countFleetTcp(fleet);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-guard-'));
  });
  after(() => {
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('0.0.0.0/0 -p 80 refuses with one line naming the size and --allow-large, and sends nothing', async () => {
    const before = linkCounters(fleet);
    const r = await runCli(['sweep', '0.0.0.0/0', '-p', '80', '--no-progress'], fleet);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'halfopen: the sweep covers 3724476416 addresses, more than 2^24 (16777216): check the targets, or give --allow-large to sweep that many\n');
    const after = linkCounters(fleet);
    assert.deepEqual(after, before, 'no packet left the prober');
  });

  test('a target wholly inside the default exclusions is one line, exit 2, nothing sent', async () => {
    const before = linkCounters(fleet);
    for (const t of ['224.0.0.0/30', '127.0.0.0/30', '0.0.0.0/30', '255.255.255.255', '169.254.0.0/30', 'ff02::1', '::1']) {
      const r = await runCli(['sweep', t, '-p', '80', '--no-progress'], fleet);
      assert.equal(r.code, 2, t);
      assert.match(r.stderr, new RegExp(`^halfopen: target "${t.replace(/\./g, '\\.')}" is inside the default exclusions, \\S+ \\([^)]+\\): give --no-default-excludes to probe it\\n$`), t);
    }
    assert.deepEqual(linkCounters(fleet), before);
  });

  test('--allow-large --dry-run: the plan names the exclusions, no probe falls in them, nothing is sent', async () => {
    const before = linkCounters(fleet);
    const child = startCli(['sweep', '0.0.0.0/0', '-p', '80', '--allow-large', '--dry-run', '--seed', '1'], fleet);
    let stderr = '';
    child.stderr!.on('data', (d) => { stderr += d; });
    const rl = readline.createInterface({ input: child.stdout! });
    let n = 0, special = 0;
    const deadline = setTimeout(() => child.kill('SIGKILL'), 60_000);
    try {
      for await (const line of rl) {
        const [ip, port] = line.split(' ');
        assert.equal(port, '80');
        if (specialRangeOf(mustParseAddress(ip))) special++;
        if (++n === 2_000_000) break;
      }
    } finally {
      clearTimeout(deadline);
      child.kill('SIGTERM');
    }
    assert.equal(n, 2_000_000);
    assert.equal(special, 0, 'none of the first 2,000,000 probes is in the default exclusions');
    assert.match(stderr, /^halfopen: plan: 3724476416 probes: 3724476416 addresses × 1 port/m);
    assert.match(stderr, /^halfopen: 570490880 probes excluded by the default exclusions \(0\.0\.0\.0\/8 16777216 addresses, 127\.0\.0\.0\/8 16777216 addresses, 169\.254\.0\.0\/16 65536 addresses, 224\.0\.0\.0\/4 268435456 addresses, 240\.0\.0\.0\/4 268435456 addresses\)$/m);
    assert.match(stderr, /nothing is sent \(--dry-run\)/);
    assert.deepEqual(linkCounters(fleet), before, 'a dry run sends nothing');
  });

  test('a /16 with 6.6 % silent and the default timeout is exact; the run record says what it waited', async () => {
    const meta = path.join(dir, 'auto.json');
    const t0 = Date.now();
    const r = await runCli(['sweep', SPEC.v4!, '-p', '80', '--format', 'ndjson', '--rate', '100000', '--no-progress', '--metadata-file', meta], fleet, 120_000);
    const wall = Date.now() - t0;
    const tally = assertExact(fleet, r, 65536);
    assert.deepEqual(tally, { open: 65536 - 4352, filtered: 4352 });
    const rec = JSON.parse(fs.readFileSync(meta, 'utf8'));
    assert.equal(rec.complete, true);
    assert.equal(rec.addresses, 65536);
    assert.equal(rec.excluded_by_default, 0);
    assert.equal(rec.default_excludes, true);
    assert.equal(rec.timeout.mode, 'auto');
    assert.ok(rec.timeout.samples >= 61184, `RTT samples ${rec.timeout.samples}`);
    assert.ok(rec.timeout.ms >= 50 && rec.timeout.ms <= 1000, `chose ${rec.timeout.ms} ms`);
    assert.equal(rec.timeout.floor_ms, 50);
    assert.equal(rec.timeout.ceiling_ms, 1000);
    assert.ok(rec.timeout.ms >= Math.ceil(3 * rec.timeout.rtt_quantile_ms) || rec.timeout.ms === 50 || rec.timeout.ms === 1000);
    process.stdout.write(`# /16, 6.6 % silent, --timeout auto: ${wall} ms wall, waited ${rec.timeout.ms} ms (p99 RTT ${rec.timeout.rtt_quantile_ms} ms)\n`);
  });

  test('replies delayed by 20-250 ms: auto is exact and waits longer; a fixed 100 ms misses them', async () => {
    const delayed = await delayedReplies(fleet, '198.19.16.0/22', 20, 250, 16);
    try {
      const meta = path.join(dir, 'delayed.json');
      const r = await runCli(['sweep', '198.18.0.0/20', delayed.prefix, '-p', '80', '--format', 'ndjson', '--rate', '20000', '--no-progress', '--metadata-file', meta], fleet, 120_000);
      assert.equal(r.code, 0, r.stderr);
      const rows = parseNdjson(r.stdout);
      assert.equal(rows.length, 4096 + 1024);
      const wrong: string[] = [];
      const seen = new Set<string>();
      for (const x of rows) {
        assert.ok(!seen.has(x.ip), `duplicate ${x.ip}`);
        seen.add(x.ip);
        const addr = mustParseAddress(x.ip);
        const inDelayed = addr >= mustParseAddress('198.19.16.0') && addr <= mustParseAddress('198.19.19.255');
        const want = inDelayed ? delayed.truth(x.ip) : fleet.truth(addr, 80);
        if (x.state !== want) wrong.push(`${x.ip} ${x.state} (want ${want})`);
      }
      assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} wrong verdicts`);
      const delayedOpen = rows.filter((x) => x.ip.startsWith('198.19.') && x.state === 'open');
      assert.equal(delayedOpen.length, 1024 - 64);
      assert.ok(Math.max(...delayedOpen.map((x) => x.rtt_ms as number)) >= 200, 'replies really were late');
      const rec = JSON.parse(fs.readFileSync(meta, 'utf8'));
      assert.equal(rec.timeout.mode, 'auto');
      assert.ok(rec.timeout.ms >= 3 * 200, `waited only ${rec.timeout.ms} ms for replies up to 250 ms late`);
      process.stdout.write(`# delayed 20-250 ms, --timeout auto: waited ${rec.timeout.ms} ms (p99 RTT ${rec.timeout.rtt_quantile_ms} ms)\n`);

      // The control: a fixed wait shorter than the replies' delay loses verdicts.
      const c = await runCli(['sweep', delayed.prefix, '-p', '80', '--format', 'ndjson', '--rate', '20000', '--no-progress', '--timeout', '100', '--retries', '0'], fleet, 120_000);
      assert.equal(c.code, 0, c.stderr);
      const missed = parseNdjson(c.stdout).filter((x) => x.state !== delayed.truth(x.ip)).length;
      assert.ok(missed > 100, `a fixed 100 ms wait should miss the late replies, missed ${missed}`);
    } finally {
      const out = await delayed.stop();
      fleet.exec('prober', 'ip', ['route', 'del', delayed.prefix]);
      process.stdout.write(`# responder: ${out.trim().split('\n').pop()}\n`);
    }
  });
});
