// Integration tier: sharing the interface. An unrelated XDP program on the
// prober's veth (in the prober namespace), and other halfopen processes on
// the same interface: every run must stay exact, the other program must stay
// attached with the same id, and replies someone else drops must be reported.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { heldBy, anyLeft } from '../helpers/bpf-objects';
import { Fleet, FleetSpec } from '../../src/fleet/fleet';
import { lab20x2, assertExact } from '../helpers/lab';
import { mustParseAddress } from '../../src/targets/address';
import { netnsSkipReason } from '../helpers/privileges';
import { runCli, startCli, collect, parseNdjson, CliResult } from '../helpers/cli';
import { ServeProcess, waitFor } from '../helpers/serve';

const skip = netnsSkipReason();

const SPEC: FleetSpec = lab20x2('coexist');

/** A pass-all XDP program, or one that drops TCP to ports lo-hi (our probes' replies). */
function foreignSource(dropLo?: number, dropHi?: number): string {
  const body = dropLo === undefined ? 'return XDP_PASS;' : `
  void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  struct iphdr *ip = (void *)(eth + 1);
  struct tcphdr *th;
  if ((void *)(ip + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP) || ip->protocol != IPPROTO_TCP) return XDP_PASS;
  th = (void *)ip + ip->ihl * 4;
  if ((void *)(th + 1) > end) return XDP_PASS;
  unsigned short d = __builtin_bswap16(th->dest);
  return d >= ${dropLo} && d <= ${dropHi} ? XDP_DROP : XDP_PASS;`;
  return `#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
__attribute__((section("xdp"), used)) int foreign(struct xdp_md *ctx) {${body}
}
char _license[] __attribute__((section("license"), used)) = "GPL";
`;
}

/** Attaches a foreign XDP program to the prober's veth (ip link, native mode); returns its id. */
function attachForeign(fleet: Fleet, source: string): number {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-foreign-'));
  try {
    const src = path.join(dir, 'foreign.c'), obj = path.join(dir, 'foreign.o');
    fs.writeFileSync(src, source);
    execFileSync('clang', ['-O2', '-target', 'bpf', `-I/usr/include/${os.machine()}-linux-gnu`, '-c', src, '-o', obj]);
    execFileSync('ip', ['-n', fleet.prober, 'link', 'set', 'dev', fleet.proberIf, 'xdpdrv', 'obj', obj, 'sec', 'xdp']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const id = foreignId(fleet);
  assert.ok(id, 'foreign program attached');
  return id!;
}

function foreignId(fleet: Fleet): number | null {
  const link = JSON.parse(fleet.exec('prober', 'ip', ['-j', '-d', 'link', 'show', 'dev', fleet.proberIf]))[0];
  return link.xdp?.prog?.id ?? null;
}

function detachForeign(fleet: Fleet): void {
  fleet.exec('prober', 'ip', ['link', 'set', 'dev', fleet.proberIf, 'xdpdrv', 'off']);
}


const SWEEP_20x2 = ['sweep', SPEC.v4!, SPEC.v6!, '-p', '80,81', '--format', 'ndjson', '--timeout', '500', '--rate', '50000', '--no-progress'];
const DEBUG = ['env', 'HALFOPEN_DEBUG=1'];

/** 500 backends: ports 80 (open) and 81 (closed), some in the drop and reject ranges. */
function serveConfig(dir: string, http: number, extra = ''): string {
  const lines = [
    'defaults: { interval: 500ms, timeout: 300ms, rise: 2, fall: 2, jitter: 0 }',
    `listen: { http: "127.0.0.1:${http}" }`,
    `events: ${dir}/events-${http}.ndjson`,
    extra,
    'backends:',
  ];
  for (let i = 0; i < 500; i++) {
    // 198.18.1.0-198.18.1.255 and 198.18.4.0-198.18.5.243: open, closed, filtered and unreachable.
    const a = i < 256 ? `198.18.1.${i}` : `198.18.${4 + ((i - 256) & 1)}.${(i - 256) >> 1}`;
    lines.push(`  - { name: b${i}, host: ${a}, port: ${i % 5 === 0 ? 81 : 80} }`);
  }
  const file = path.join(dir, 'serve.yaml');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

/** Waits until every backend has settled, then checks each against the fleet. */
async function assertServeExact(fleet: Fleet, serve: ServeProcess, http: number): Promise<void> {
  const settled = () => serve.json(http, '/backends').every((b: any) => b.counters.checks >= 3);
  assert.ok(await waitFor(settled, 20_000, 200), 'every backend checked 3 times');
  const wrong: string[] = [];
  for (const b of serve.json(http, '/backends')) {
    const truth = fleet.truth(mustParseAddress(b.address), b.port);
    const want = truth === 'open' ? 'up' : 'down';
    if (b.state !== want || b.last.state !== truth) wrong.push(`${b.name} ${b.address}:${b.port} ${b.state}/${b.last.state} (want ${want}/${truth})`);
  }
  assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} wrong backends`);
}

describe('sharing the interface with another XDP program', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  before(async () => {
    fleet = await Fleet.create(SPEC);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-coexist-'));
  });
  after(() => {
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a /20 × 2 sweep falls back to tc ingress, is exact, and leaves the other program as it was', async () => {
    const id = attachForeign(fleet, foreignSource());
    try {
      const r = await runCli(SWEEP_20x2, fleet, 120_000, DEBUG);
      const tally = assertExact(fleet, r, 2 * 4096 * 2);
      assert.deepEqual(tally, { open: 7168, closed: 7168, filtered: 1024, unreachable: 1024 });
      assert.match(r.stderr, /engine open: tc ingress on \S+, raw sends, RSTs from the kernel/);
      const warnings = r.stderr.split('\n').filter((l) => /warning/.test(l));
      assert.equal(warnings.length, 1, r.stderr);
      assert.match(warnings[0], new RegExp(`the XDP hook of \\S+ is taken \\(program ${id} "foreign"\\): matching replies at tc ingress \\(tcx\\) instead`));
      assert.equal(foreignId(fleet), id, 'the other program is still attached, same id');
      assert.equal(fleet.synRecvCount(), 0, 'no half-open sockets left on the servers');
      assert.deepEqual(fleet.acceptedConnections(), []);
    } finally {
      detachForeign(fleet);
    }
  });

  test('--hook xdp refuses to touch the other program; --hook tc goes to tc without a fallback warning', async () => {
    const id = attachForeign(fleet, foreignSource());
    try {
      const usage = await runCli(['sweep', '198.18.0.1', '-p', '80', '--hook', 'tcx'], fleet);
      assert.equal(usage.code, 2, usage.stderr);
      assert.match(usage.stderr, /--hook/);
      assert.equal(usage.stderr.trim().split('\n').length, 1);
      const refused = await runCli(['sweep', '198.18.0.1', '-p', '80', '--hook', 'xdp', '--no-progress'], fleet);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /another XDP program is attached there/);
      const tc = await runCli(['sweep', '198.18.0.0/28', '-p', '80', '--hook', 'tc', '--format', 'ndjson', '--timeout', '300', '--no-progress'], fleet, 60_000, DEBUG);
      assertExact(fleet, tc, 16);
      assert.doesNotMatch(tc.stderr, /warning/);
      assert.equal(foreignId(fleet), id);
    } finally {
      detachForeign(fleet);
    }
  });

  test('a 500-backend serve at tc ingress is exact, and the other program stays', async () => {
    const id = attachForeign(fleet, foreignSource());
    const serve = new ServeProcess(fleet, serveConfig(dir, 9190));
    try {
      await serve.ready(20_000);
      assert.match(serve.stderr, /checking 500 backends via \S+ \(tc ingress, raw sends, RSTs from the kernel\)/);
      assert.match(serve.stderr, /warning: the XDP hook of \S+ is taken/);
      await assertServeExact(fleet, serve, 9190);
      assert.equal(foreignId(fleet), id);
    } finally {
      await serve.stop();
      detachForeign(fleet);
    }
    assert.equal(fleet.synRecvCount(), 0);
  });

  test('replies the other program drops are reported, not silently called filtered', async () => {
    const id = attachForeign(fleet, foreignSource(61000, 61999));
    try {
      const r = await runCli(['sweep', '198.18.0.0/24', '-p', '80', '--format', 'ndjson', '--timeout', '300', '--no-progress'], fleet, 60_000);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(parseNdjson(r.stdout).every((x) => x.state === 'filtered'), 'every reply was dropped before us');
      assert.match(r.stderr, new RegExp(`warning: 256 of 256 probes got no reply, and \\d+ packets reached \\S+ but never the tc matcher: the XDP program there \\(${id} "foreign"\\) drops or redirects them`));
      assert.equal(foreignId(fleet), id);
    } finally {
      detachForeign(fleet);
    }
  });

  test('serve: checks whose replies the other program drops are reported, once', async () => {
    const id = attachForeign(fleet, foreignSource(62000, 62999));
    const serve = new ServeProcess(fleet, serveConfig(dir, 9193));
    try {
      await serve.ready(20_000);
      const re = new RegExp(`warning: \\d+ of \\d+ checks got no reply, and \\d+ packets reached \\S+ but never the tc matcher: the XDP program there \\(${id} "foreign"\\) drops or redirects them`);
      assert.ok(await waitFor(() => re.test(serve.stderr), 15_000, 200), serve.stderr);
      assert.equal(serve.stderr.split('\n').filter((l) => re.test(l)).length, 1);
    } finally {
      await serve.stop();
      detachForeign(fleet);
    }
  });

  test('two sweeps both at tc (one tcx chain): the first hands the second\'s replies on (TCX_NEXT), both exact', async () => {
    const id = attachForeign(fleet, foreignSource());
    try {
      // Overlapping source ports, different targets; the first is slow enough to outlast the second.
      const a = startCli(['sweep', '198.18.0.0/23', '-p', '80,81', '--format', 'ndjson', '--timeout', '300', '--rate', '250', '--no-progress'], fleet, DEBUG);
      let errA = '';
      a.stderr!.on('data', (d) => { errA += d; });
      const doneA = collect(a, 120_000);
      assert.ok(await waitFor(() => /engine open: tc ingress/.test(errA), 10_000), 'the first sweep is at tc');
      const rb = await runCli(['sweep', '198.18.2.0/23', '198.18.5.0/28', '-p', '80,81', '--format', 'ndjson', '--timeout', '300', '--no-progress'], fleet, 120_000, DEBUG);
      assert.equal(a.exitCode, null, 'the first sweep was still going');
      const ra = await doneA;
      assertExact(fleet, ra, 512 * 2);
      assertExact(fleet, rb, (512 + 16) * 2);
      for (const r of [ra, rb]) assert.match(r.stderr, /engine open: tc ingress on/);
      assert.equal(foreignId(fleet), id);
    } finally {
      detachForeign(fleet);
    }
  });

  test('a killed sweep at tc leaves nothing behind (bpf_link), and the other program stays', async () => {
    const id = attachForeign(fleet, foreignSource());
    try {
      const child = startCli(['sweep', SPEC.v4!, '-p', '80', '--rate', '200', '--format', 'ndjson', '--no-progress'], fleet);
      const done = collect(child, 30_000);
      let links: number[] = [], progs: number[] = [];
      try {
        assert.ok(await waitFor(() => (links = heldBy('link', child.pid!)).length === 1 && (progs = heldBy('prog', child.pid!)).length > 0, 10_000), 'a tcx link while the sweep runs');
      } finally {
        child.kill('SIGKILL');
        await done;
      }
      assert.ok(await waitFor(() => !anyLeft('link', links) && !anyLeft('prog', progs), 5_000), 'link gone and program unloaded');
      assert.equal(foreignId(fleet), id);
    } finally {
      detachForeign(fleet);
    }
  });

  test('a dark network behind a pass-all program is filtered without the lost-replies warning', async () => {
    attachForeign(fleet, foreignSource());
    try {
      const r = await runCli(['sweep', '198.18.4.0/26', '2001:2::400/122', '-p', '80', '--format', 'ndjson', '--timeout', '200', '--no-progress'], fleet, 60_000);
      assert.deepEqual(assertExact(fleet, r, 128), { filtered: 128 });
      assert.doesNotMatch(r.stderr, /got no reply/);
    } finally {
      detachForeign(fleet);
    }
  });
});

describe('several halfopen processes on one interface', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  before(async () => {
    fleet = await Fleet.create({ ...SPEC, tag: 'multi' });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-multi-'));
  });
  after(() => {
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Starts `first`, waits until it holds the XDP hook, runs `second` to the
   * end while the first still runs, then waits for the first.
   */
  async function overlapping(first: string[], second: string[]): Promise<[CliResult, CliResult]> {
    const a = startCli(first, fleet, DEBUG);
    const doneA = collect(a, 120_000);
    assert.ok(await waitFor(() => fleet.xdpAttached(), 10_000), 'the first run holds the XDP hook');
    const rb = await runCli(second, fleet, 120_000, DEBUG);
    assert.equal(a.exitCode, null, 'the first run was still going when the second ended');
    return [await doneA, rb];
  }

  // The first sweep runs slowly enough (250 probes/s: 4 s and more) to outlast the second.
  const slow = (targets: string[], extra: string[] = [], rate = 250) => ['sweep', ...targets, '-p', '80,81', '--format', 'ndjson', '--timeout', '300', '--rate', String(rate), '--no-progress', ...extra];
  const fast = (targets: string[], extra: string[] = []) => ['sweep', ...targets, '-p', '80,81', '--format', 'ndjson', '--timeout', '300', '--rate', '20000', '--no-progress', ...extra];

  test('two sweeps, overlapping source ports, different targets: both exact (each passes the other\'s replies on)', async () => {
    // Same default source ports 61000-61999: each program sees the other's replies as invalid and hands them on.
    const [a, b] = await overlapping(slow(['198.18.0.0/23']), fast(['198.18.4.0/22', '2001:2::400/119']));
    assertExact(fleet, a, 512 * 2);
    assertExact(fleet, b, (1024 + 512) * 2);
    assert.match(a.stderr, /engine open: XDP generic on/);
    assert.match(b.stderr, /engine open: tc ingress on/);
    assert.match(b.stderr, /warning: the XDP hook of \S+ is taken \(program \d+ "halfopen_xdp", another halfopen process\)/);
    assert.doesNotMatch(b.stderr, /got no reply/);
    assert.equal(fleet.synRecvCount(), 0);
  });

  test('two sweeps of the same targets from disjoint source ports: both exact', async () => {
    const targets = ['198.18.2.0/23', '198.18.5.0/28', '2001:2::200/120'];
    const [a, b] = await overlapping(slow(targets), fast(targets, ['--source-ports', '63000-63999']));
    const want = (512 + 16 + 256) * 2;
    assert.deepEqual(assertExact(fleet, a, want), assertExact(fleet, b, want));
    assert.match(b.stderr, /engine open: tc ingress on/);
  });

  test('a sweep while serve runs (500 backends, XDP): the sweep is exact at tc and serve sees no change', async () => {
    const serve = new ServeProcess(fleet, serveConfig(dir, 9191));
    try {
      await serve.ready(20_000);
      assert.match(serve.stderr, /checking 500 backends via \S+ \(generic XDP, /);
      await assertServeExact(fleet, serve, 9191);
      const eventsBefore = fs.readFileSync(path.join(dir, 'events-9191.ndjson'), 'utf8');
      const r = await runCli(SWEEP_20x2, fleet, 120_000, DEBUG);
      const tally = assertExact(fleet, r, 2 * 4096 * 2);
      assert.deepEqual(tally, { open: 7168, closed: 7168, filtered: 1024, unreachable: 1024 });
      assert.match(r.stderr, /engine open: tc ingress on/);
      await assertServeExact(fleet, serve, 9191);
      assert.equal(fs.readFileSync(path.join(dir, 'events-9191.ndjson'), 'utf8'), eventsBefore, 'no backend changed state during the sweep');
      assert.ok(fleet.xdpAttached(), 'serve still holds the XDP hook');
    } finally {
      await serve.stop();
    }
    assert.equal(fleet.synRecvCount(), 0);
  });

  test('serve started while a sweep holds the XDP hook: serve at tc, both exact', async () => {
    // 2,048 probes at 200/s: 10 s, longer than serve takes to start and settle.
    const a = startCli(slow(['198.18.0.0/22'], [], 200), fleet, DEBUG);
    const doneA = collect(a, 120_000);
    let serve: ServeProcess | null = null;
    try {
      assert.ok(await waitFor(() => fleet.xdpAttached(), 10_000), 'the sweep holds the XDP hook');
      serve = new ServeProcess(fleet, serveConfig(dir, 9192, 'probe: { source_ports: 62000-62999 }'));
      await serve.ready(20_000);
      assert.match(serve.stderr, /checking 500 backends via \S+ \(tc ingress, /);
      await assertServeExact(fleet, serve, 9192);
      const ra = await doneA;
      assertExact(fleet, ra, 1024 * 2);
      assert.match(ra.stderr, /engine open: XDP generic on/);
      await assertServeExact(fleet, serve, 9192);
    } finally {
      await serve?.stop();
      if (a.exitCode === null) a.kill('SIGTERM');
      await doneA;
    }
  });
});
