// Scale-out, four machines simulated: four prober namespaces, each with its
// own address and veth into one fleet namespace, each running the sweep Job's
// pod command from deploy/kubernetes/sweep.yaml with JOB_COMPLETION_INDEX
// 0…3; then the merge Job's command. The merge must be the fleet's
// construction exactly and equal a single-machine sweep of the same space;
// and again after one shard is killed with SIGKILL and its pod "replaced"
// (the same command, the same index), which resumes from the checkpoint.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fleet, FleetSpec } from '../../src/fleet/fleet';
import { mustParseAddress } from '../../src/targets/address';
import { netnsSkipReason } from '../helpers/privileges';
import { collect, MAIN, CliResult } from '../helpers/cli';
import { scaleOutCommands, ScaleOutCommands } from '../helpers/scale-out';
import { waitFor } from '../helpers/serve';

const skip = netnsSkipReason();

// The ConfigMap's targets are 198.18.0.0/16, swept on 80,443,8080,8443.
const SPEC: FleetSpec = {
  tag: 'scale',
  v4: '198.18.0.0/16',
  open: [80, 8080],
  drop: ['198.18.4.0/24'],
  reject: ['198.18.5.0/24'],
  probers: 4,
};
const PORTS = [80, 443, 8080, 8443];
const PROBES = 65536 * PORTS.length;

describe('scale-out: four shards on four machines, merged', { skip }, () => {
  let fleet: Fleet;
  let tmp: string;
  let cmds: ScaleOutCommands;
  let env: NodeJS.ProcessEnv;
  const data = () => path.join(tmp, 'data');

  before(async () => {
    fleet = await Fleet.create(SPEC);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-scale-'));
    cmds = scaleOutCommands({ '/data': path.join(tmp, 'data'), '/etc/halfopen': path.join(tmp, 'etc') });
    fs.mkdirSync(path.join(tmp, 'etc'));
    fs.writeFileSync(path.join(tmp, 'etc', 'targets.txt'), cmds.targets);
    // `halfopen` on the PATH, as in the image.
    fs.mkdirSync(path.join(tmp, 'bin'));
    fs.writeFileSync(path.join(tmp, 'bin', 'halfopen'), `#!/bin/sh\nexec ${process.execPath} ${MAIN} "$@"\n`, { mode: 0o755 });
    env = { ...process.env, PATH: `${path.join(tmp, 'bin')}:${process.env.PATH}` };
  });
  after(() => {
    fleet?.remove();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** The sweep pod of index k, on machine k. */
  const pod = (k: number): ChildProcess => {
    const argv = [...fleet.proberArgv(k), 'env', `JOB_COMPLETION_INDEX=${k}`, ...cmds.sweep];
    return spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env });
  };
  const mergeRun = (args = cmds.merge): Promise<CliResult> => collect(spawn('halfopen', args, { stdio: ['ignore', 'pipe', 'pipe'], env }), 120_000);
  const freshData = () => { fs.rmSync(data(), { recursive: true, force: true }); fs.mkdirSync(data()); };

  /** Checks every merged row against the fleet; returns "ip port state" lines, sorted. */
  function checkExact(file: string): string[] {
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    assert.equal(lines.length, PROBES, 'one row per probe: 0 missing');
    const keys = new Set<string>();
    const wrong: string[] = [];
    const out: string[] = [];
    for (const l of lines) {
      const x = JSON.parse(l);
      const key = `${x.ip} ${x.port}`;
      assert.ok(!keys.has(key), `duplicate ${key}`);
      keys.add(key);
      const want = fleet.truth(mustParseAddress(x.ip), x.port);
      if (x.state !== want) wrong.push(`${key} ${x.state} (want ${want})`);
      out.push(`${key} ${x.state}`);
    }
    assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} wrong verdicts`);
    for (let a = 0; a < 65536; a += 4099) for (const p of PORTS) assert.ok(keys.has(`198.18.${a >> 8}.${a & 255} ${p}`));
    return out.sort();
  }

  let merged: string[] = [];

  test('four pods, JOB_COMPLETION_INDEX 0…3, then merge: the fleet exactly, 0 duplicates, 0 missing', async () => {
    assert.equal(cmds.shards, 4);
    freshData();
    const t0 = performance.now();
    const runs = await Promise.all([0, 1, 2, 3].map((k) => collect(pod(k), 120_000)));
    const wall = (performance.now() - t0) / 1000;
    runs.forEach((r, k) => assert.equal(r.code, 0, `shard ${k}: ${r.stderr}`));
    for (let k = 0; k < 4; k++) {
      const rec = JSON.parse(fs.readFileSync(path.join(data(), `shard-${k}.json`), 'utf8'));
      assert.deepEqual(rec.shard, { index: k, count: 4 });
      assert.equal(rec.complete, true);
      assert.equal(fleet.xdpAttached(k), false, `XDP detached on machine ${k}`);
    }
    const m = await mergeRun();
    assert.equal(m.code, 0, m.stderr);
    assert.match(m.stderr, /262144 probes .*merged 4 shards .*0 missing, 0 duplicated/);
    merged = checkExact(path.join(data(), 'merged.ndjson'));
    process.stderr.write(`# scale-out: 4 shards × ${PROBES / 4} probes in ${wall.toFixed(2)} s wall (${Math.round(PROBES / wall)} probes/s over the four); merge ${m.stderr.match(/in ([\d.]+) s: 0 missing/)?.[1]} s\n`);
    assert.deepEqual(fleet.acceptedConnections(), [], 'no connection reached the application');
  });

  test('the merge equals a single-machine sweep of the same space', async () => {
    assert.ok(merged.length, 'needs the previous test');
    const single = path.join(tmp, 'single.ndjson');
    const args = ['sweep', '-iL', path.join(tmp, 'etc', 'targets.txt'), '-p', PORTS.join(','), '--rate', '80000', '--format', 'ndjson', '-o', single, '--no-progress'];
    const t0 = performance.now();
    const r = await collect(spawn(fleet.proberArgv(0)[0], [...fleet.proberArgv(0).slice(1), 'halfopen', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env }), 120_000);
    const wall = (performance.now() - t0) / 1000;
    assert.equal(r.code, 0, r.stderr);
    process.stderr.write(`# single machine, --rate 80000: ${PROBES} probes in ${wall.toFixed(2)} s wall (${Math.round(PROBES / wall)} probes/s)\n`);
    assert.deepEqual(checkExact(single), merged);
  });

  test('a shard killed with SIGKILL mid-run: merge refuses it (exit 2, one line); the replaced pod resumes it; the merge is exact again', async () => {
    freshData();
    const others = [0, 1, 2].map((k) => collect(pod(k), 120_000));
    const victim = pod(3);
    const done = collect(victim, 120_000);
    const out = path.join(data(), 'shard-3.ndjson');
    const size = () => { try { return fs.statSync(out).size; } catch { return 0; } };
    // Mid-run: some rows written, and a checkpoint beyond the start.
    assert.ok(await waitFor(() => size() > 100_000 && fs.existsSync(path.join(data(), 'shard-3.checkpoint')), 60_000), 'shard 3 under way');
    await sleep(300);
    victim.kill('SIGKILL');
    const killed = await done;
    assert.equal(killed.signal, 'SIGKILL', `killed mid-run (exit ${killed.code}: ${killed.stderr})`);
    for (const r of await Promise.all(others)) assert.equal(r.code, 0, r.stderr);
    assert.ok(await waitFor(() => !fleet.xdpAttached(3), 5_000), 'the kernel detached XDP of the killed shard');

    const refused = await mergeRun();
    assert.equal(refused.code, 2, refused.stderr);
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
    assert.match(refused.stderr, /shard-3\.json: shard 3 of 4 is incomplete/);
    assert.ok(!fs.existsSync(path.join(data(), 'merged.ndjson')), 'nothing merged');

    // Kubernetes replaces the pod: same index, same command; it finds the checkpoint.
    const again = await collect(pod(3), 120_000);
    assert.equal(again.code, 0, again.stderr);
    const m = await mergeRun();
    assert.equal(m.code, 0, m.stderr);
    assert.deepEqual(checkExact(path.join(data(), 'merged.ndjson')), merged);
  });
});
