// Several source addresses per sweep (issue 23): four IPv4 sources on the
// prober, each probe from the source its place in the keyed order says
// (sweep/sources.ts), seen on the wire by a capture in the fleet; every
// verdict exact; shards + merge and SIGINT + resume exact, with the sources
// of the whole sweep's order.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fleet, FleetSpec, PROBER_V4, PROBER_V6 } from '../../src/fleet/fleet';
import { formatAddress, isV4 } from '../../src/targets/address';
import { buildSpace, orderedSource } from '../../src/sweep/space';
import { lab20x2, assertExact } from '../helpers/lab';
import { netnsSkipReason } from '../helpers/privileges';
import { runCli, startCli, collect, parseNdjson } from '../helpers/cli';
import { waitFor } from '../helpers/serve';
import { captureSyns as capture } from '../helpers/syn-capture';

const skip = netnsSkipReason();
const SPEC: FleetSpec = { ...lab20x2('sources'), drop: ['198.18.4.0/24'], reject: ['198.18.5.0/24'] };
const SOURCES = ['198.19.253.1', '198.19.253.2', '198.19.253.3', '198.19.253.4'];
const SEED = '11';
const TARGET = '198.18.0.0/20';

const SOURCES6 = ['2001:2:0:fffe::1', '2001:2:0:fffe::2'];

/** "ip port" → the source the probe must leave from: its family's list at position mod K in the seed's order. */
async function expectedSources(targets = [TARGET], v6: string[] = []): Promise<Map<string, string>> {
  const { space } = await buildSpace({ targets, ports: '80' });
  const order = orderedSource(space, BigInt(SEED));
  const m = new Map<string, string>();
  for (let p = 0; p < order.size; p++) {
    const probe = order.at(p);
    const list = isV4(probe.addr) ? SOURCES : v6;
    m.set(`${formatAddress(probe.addr)} ${probe.port}`, list[p % list.length]);
  }
  return m;
}

/** Every captured SYN left from its probe's source; returns how many probes had at least one. */
function assertSources(syns: string[], want: Map<string, string>): number {
  const wrong: string[] = [];
  const probes = new Set<string>();
  for (const l of syns) {
    const [src, dst, port] = l.split(' ');
    const key = `${dst} ${port}`;
    const w = want.get(key);
    assert.ok(w, `a SYN to ${key}, not a probe of the sweep`);
    if (src !== w) wrong.push(`${key} from ${src}, want ${w}`);
    probes.add(key);
  }
  assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} SYNs from the wrong source`);
  return probes.size;
}

describe('sweep from several source addresses', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  let want: Map<string, string>;
  before(async () => {
    fleet = await Fleet.create(SPEC);
    for (const a of SOURCES) fleet.exec('prober', 'ip', ['addr', 'add', `${a}/32`, 'dev', fleet.proberIf]);
    fleet.exec('fleet', 'ip', ['route', 'add', '198.19.253.0/29', 'via', PROBER_V4, 'dev', fleet.fleetIf]);
    for (const a of SOURCES6) fleet.exec('prober', 'ip', ['addr', 'add', `${a}/128`, 'dev', fleet.proberIf, 'nodad']);
    fleet.exec('fleet', 'ip', ['-6', 'route', 'add', '2001:2:0:fffe::/64', 'via', PROBER_V6, 'dev', fleet.fleetIf]);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-sources-'));
    want = await expectedSources();
  });
  after(() => {
    fleet?.remove();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const COMMON = [TARGET, '-p', '80', '--seed', SEED, '--source-ip', '198.19.253.1-198.19.253.4', '--format', 'ndjson', '--no-progress'];

  test('four sources: every probe from the source its place says, every verdict exact, the run record lists them', async () => {
    const stop = await capture(fleet, path.join(dir, 'one.syn'));
    const meta = path.join(dir, 'one.json');
    const r = await runCli(['sweep', ...COMMON, '--rate', '20000', '--metadata-file', meta], fleet, 120_000);
    const syns = await stop();
    assertExact(fleet, r, 4096);
    assert.equal(assertSources(syns, want), 4096, 'every probe was seen on the wire');
    const per = new Map<string, number>();
    for (const l of syns) per.set(l.split(' ')[0], (per.get(l.split(' ')[0]) ?? 0) + 1);
    for (const s of SOURCES) assert.ok((per.get(s) ?? 0) >= 1024, `${s} sent ${per.get(s)}`);
    assert.deepEqual(JSON.parse(fs.readFileSync(meta, 'utf8')).sources, SOURCES);
    assert.equal(fleet.synRecvCount(), 0, 'no half-open sockets left');
  });

  test('two shards and a merge: the sources of the whole order, the merge exact', async () => {
    const stop = await capture(fleet, path.join(dir, 'shards.syn'));
    const metas: string[] = [];
    for (const i of [0, 1]) {
      const out = path.join(dir, `shard-${i}.ndjson`), meta = path.join(dir, `shard-${i}.json`);
      const r = await runCli(['sweep', ...COMMON, '--rate', '20000', '--shards', '2', '--shard-index', String(i), '-o', out, '--metadata-file', meta], fleet, 120_000);
      assert.equal(r.code, 0, r.stderr);
      metas.push(meta);
    }
    const syns = await stop();
    assert.equal(assertSources(syns, want), 4096);
    const m = await runCli(['merge', ...metas, '--format', 'ndjson']);
    assertExact(fleet, m, 4096);
  });

  test('SIGINT and --resume: exact, and the resumed run keeps every probe\'s source', async () => {
    const stop = await capture(fleet, path.join(dir, 'resume.syn'));
    const out = path.join(dir, 'resume.ndjson'), state = path.join(dir, 'resume.state');
    const child = startCli(['sweep', ...COMMON, '--rate', '1000', '-o', out, '--checkpoint', state], fleet);
    const done = collect(child, 60_000);
    await waitFor(() => fleet.xdpAttached(), 20_000);
    await sleep(2000);
    child.kill('SIGINT');
    const first = await done;
    assert.equal(first.code, 130, first.stderr);
    const rest = await collect(startCli(['sweep', '--resume', state], fleet), 120_000);
    assert.equal(rest.code, 0, rest.stderr);
    const syns = await stop();
    assertExact(fleet, { code: 0, signal: null, stdout: fs.readFileSync(out, 'utf8'), stderr: '' }, 4096);
    assert.equal(assertSources(syns, want), 4096);
    assert.ok(parseNdjson(fs.readFileSync(out, 'utf8')).length === 4096);
  });

  test('IPv4 and IPv6 lists at once (4 and 2 addresses): each family from its own list, verdicts exact', async () => {
    const targets = ['198.18.0.0/22', '2001:2::/120'];
    const want46 = await expectedSources(targets, SOURCES6);
    const stop = await capture(fleet, path.join(dir, 'dual.syn'));
    const meta = path.join(dir, 'dual.json');
    const r = await runCli(['sweep', ...targets, '-p', '80', '--seed', SEED, '--source-ip', '198.19.253.1-198.19.253.4', '--source-ip', '2001:2:0:fffe::1-2001:2:0:fffe::2',
      '--format', 'ndjson', '--no-progress', '--rate', '20000', '--metadata-file', meta], fleet, 120_000);
    const syns = await stop();
    assertExact(fleet, r, 1024 + 256);
    assert.equal(assertSources(syns, want46), 1024 + 256);
    const v6from = new Set(syns.filter((l) => l.includes(':')).map((l) => l.split(' ')[0]));
    assert.deepEqual([...v6from].sort(), SOURCES6);
    assert.deepEqual(JSON.parse(fs.readFileSync(meta, 'utf8')).sources, [...SOURCES, ...SOURCES6]);
  });

  test('--send-path packet with several sources is one line, exit 2', async () => {
    const r = await runCli(['sweep', ...COMMON, '--send-path', 'packet'], fleet);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^halfopen: --send-path packet sends from one source address: .*\n$/);
  });
});
