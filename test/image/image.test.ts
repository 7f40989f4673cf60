// The container image, run as Kubernetes would run it: only NET_RAW,
// NET_ADMIN, BPF and PERFMON, a read-only root, the manifests' commands. Runs through
// `npm run test:image` (scripts/image.sh builds the image with a private
// dockerd and sets DOCKER_HOST and HALFOPEN_IMAGE); skipped otherwise.
//
// A pod's network namespace is its pause container's: here too. Each
// "machine" is a container sleeping with --network none, its namespace named
// with `ip netns attach` and wired into the fleet (Fleet adoptProbers); the
// halfopen containers join it with --network container:NAME. The daemon has
// no bridge and no iptables, so nothing on the host network changes.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet, FleetSpec } from '../../src/fleet/fleet';
import { mustParseAddress } from '../../src/targets/address';
import { netnsSkipReason } from '../helpers/privileges';
import { collect, ROOT } from '../helpers/cli';
import { configMapData, mergeJob, sweepJob, serveDaemon } from '../helpers/manifests';
import { waitFor } from '../helpers/serve';

const IMAGE = process.env.HALFOPEN_IMAGE;
const DOCKER = process.env.HALFOPEN_DOCKER ?? '/usr/bin/docker';
const skip = netnsSkipReason() || (!IMAGE || !process.env.DOCKER_HOST ? 'needs the image: run npm run test:image (scripts/image.sh run …)' : false);

// NET_RAW, NET_ADMIN, BPF and PERFMON (the XDP program's verifier needs it on
// this kernel), nothing else. Docker 20.10 knows neither BPF nor PERFMON: then
// scripts/image.sh's runtime adds them (see there); newer Docker takes --cap-add.
let CAPS = ['--cap-drop', 'ALL', '--cap-add', 'NET_RAW', '--cap-add', 'NET_ADMIN', '--cap-add', 'BPF', '--cap-add', 'PERFMON'];
const CAPS_VIA_RUNTIME = ['--runtime', 'halfopen-capbpf', '-e', 'HALFOPEN_ADD_CAPS=BPF,PERFMON', '--cap-drop', 'ALL', '--cap-add', 'NET_RAW', '--cap-add', 'NET_ADMIN'];
/** CapEff of exactly CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_PERFMON (38) and CAP_BPF (39). */
const FOUR_CAPS = (1n << 12n | 1n << 13n | 1n << 38n | 1n << 39n).toString(16).padStart(16, '0');

const PREFIX = `hos15${process.pid}`;

const docker = (args: string[], input?: string): string =>
  execFileSync(DOCKER, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 1 << 26 }).trim();

/** What a run must leave as it found: host links, nftables, forwarding, containers. */
function hostState(): string {
  const links = (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as Array<{ ifname: string; xdp?: unknown }>)
    .map((l) => `${l.ifname}${l.xdp ? ' xdp' : ''}`).sort().join(',');
  const nft = execFileSync('nft', ['list', 'ruleset'], { encoding: 'utf8' });
  const fwd = fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim() + fs.readFileSync('/proc/sys/net/ipv6/conf/all/forwarding', 'utf8').trim();
  const netns = fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns').filter((n) => n.startsWith(PREFIX)).join(',') : '';
  return JSON.stringify({ links, nft, fwd, netns, containers: docker(['ps', '-aq']) });
}

const SPEC: FleetSpec = { tag: 'image', v4: '198.18.0.0/16', open: [80, 8080], drop: ['198.18.4.0/24'], reject: ['198.18.5.0/24'], probers: 4 };
const PORTS = [80, 443, 8080, 8443];

describe('the container image', { skip }, () => {
  let fleet: Fleet | undefined;
  let tmp: string;
  let before0: string;
  const machines: string[] = [];

  before(async () => {
    try {
      docker(['run', '--rm', ...CAPS, '--network', 'none', '--entrypoint', 'true', IMAGE!]);
    } catch (err) {
      if (!/unknown capability: "CAP_(BPF|PERFMON)"/.test(String((err as { stderr?: string }).stderr))) throw err;
      CAPS = CAPS_VIA_RUNTIME;
    }
    before0 = hostState();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-image-'));
    fs.mkdirSync(path.join(tmp, 'etc'));
    fs.mkdirSync(path.join(tmp, 'data'));
    fs.writeFileSync(path.join(tmp, 'etc', 'targets.txt'), configMapData('halfopen-targets')['targets.txt']);
    // Four "machines": pause containers whose namespaces become the fleet's probers.
    for (let k = 0; k < 4; k++) {
      const name = `${PREFIX}m${k}`;
      // Docker turns IPv6 off in a namespace it gives no network; the fleet's veths carry both families.
      docker(['run', '-d', '--name', name, '--network', 'none', '--cap-drop', 'ALL', '--sysctl', 'net.ipv6.conf.all.disable_ipv6=0',
        '--sysctl', 'net.ipv6.conf.default.disable_ipv6=0', '--entrypoint', 'sleep', IMAGE!, '900']);
      machines.push(name);
      const pid = docker(['inspect', '-f', '{{.State.Pid}}', name]);
      execFileSync('ip', ['netns', 'attach', name, pid]);
    }
    fleet = await Fleet.create({ ...SPEC, adoptProbers: machines });
  });

  after(() => {
    fleet?.remove();
    for (const m of machines) {
      try { execFileSync('ip', ['netns', 'del', m], { stdio: 'ignore' }); } catch { /* not attached */ }
      try { docker(['rm', '-f', m]); } catch { /* gone */ }
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('docker run halfopen --version, with no capabilities at all', () => {
    const version = require(path.join(ROOT, 'package.json')).version;
    assert.equal(docker(['run', '--rm', '--cap-drop', 'ALL', '--network', 'none', IMAGE!, '--version']), version);
    const size = Number(docker(['image', 'inspect', '-f', '{{.Size}}', IMAGE!]));
    process.stderr.write(`# image ${IMAGE}: ${(size / 1e6).toFixed(0)} MB\n`);
    const eff = docker(['run', '--rm', ...CAPS, '--network', 'none', '--entrypoint', 'sh', IMAGE!, '-c', 'grep CapEff /proc/self/status']);
    assert.equal(eff, `CapEff:\t${FOUR_CAPS}`, 'exactly NET_RAW, NET_ADMIN, BPF and PERFMON');
    // The runtime stage has no toolchain and no npm.
    assert.equal(docker(['run', '--rm', '--network', 'none', '--entrypoint', 'sh', IMAGE!, '-c', 'command -v clang gcc g++ npm bpftool make || true']), '');
  });

  /** The sweep Job's pod k: its exact command, the volumes at their mount paths. */
  let podSeq = 0;
  const pod = (k: number, name = `${PREFIX}s${k}x${podSeq++}`) => {
    const { argv, container } = sweepJob();
    assert.deepEqual(argv.slice(0, 1), ['/bin/sh']);
    const ro = container.securityContext.readOnlyRootFilesystem ? ['--read-only'] : [];
    return spawn(DOCKER, ['run', '--rm', '--name', name, '--network', `container:${machines[k]}`, ...CAPS, ...ro,
      '--security-opt', 'no-new-privileges', '-e', `JOB_COMPLETION_INDEX=${k}`,
      '-v', `${tmp}/etc:/etc/halfopen:ro`, '-v', `${tmp}/data:/data`, '--entrypoint', argv[0], IMAGE!, ...argv.slice(1)],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  };

  test('the sweep Job in four containers on four machines, merged by the merge Job in a fifth: the fleet exactly', async () => {
    const t0 = performance.now();
    const runs = await Promise.all([0, 1, 2, 3].map((k) => collect(pod(k), 180_000)));
    const wall = (performance.now() - t0) / 1000;
    runs.forEach((r, k) => assert.equal(r.code, 0, `shard ${k}: ${r.stderr}`));
    for (let k = 0; k < 4; k++) assert.equal(fleet!.xdpAttached(k), false, `XDP detached on machine ${k}`);
    const m = await mergeInImage();
    assert.equal(m.code, 0, m.stderr);
    checkMerged();
    process.stderr.write(`# image: 4 shards in ${wall.toFixed(2)} s wall (${Math.round(65536 * PORTS.length / wall)} probes/s, docker run included)\n`);
    assert.deepEqual(fleet!.acceptedConnections(), []);
  });

  /** Every row of merged.ndjson as the fleet was built, each probe once. */
  const checkMerged = () => {
    const lines = fs.readFileSync(path.join(tmp, 'data', 'merged.ndjson'), 'utf8').split('\n').filter(Boolean);
    assert.equal(lines.length, 65536 * PORTS.length);
    const seen = new Set<string>();
    let wrong = 0;
    for (const l of lines) {
      const x = JSON.parse(l);
      seen.add(`${x.ip} ${x.port}`);
      if (x.state !== fleet!.truth(mustParseAddress(x.ip), x.port)) wrong++;
    }
    assert.equal(seen.size, lines.length, '0 duplicates');
    assert.equal(wrong, 0, 'every verdict as the fleet was built');
  };
  const mergeInImage = () => collect(spawn(DOCKER, ['run', '--rm', '--network', 'none', '--cap-drop', 'ALL', '--read-only',
    '-v', `${tmp}/etc:/etc/halfopen:ro`, '-v', `${tmp}/data:/data`, IMAGE!, ...mergeJob().argv], { stdio: ['ignore', 'pipe', 'pipe'] }), 120_000);

  test('a shard\'s container killed with SIGKILL; its replacement (same command, same index) resumes; the merge is exact', async () => {
    fs.rmSync(path.join(tmp, 'data'), { recursive: true, force: true });
    fs.mkdirSync(path.join(tmp, 'data'));
    const others = [0, 1, 2].map((k) => collect(pod(k), 180_000));
    const victimName = `${PREFIX}victim`;
    const victim = collect(pod(3, victimName), 180_000);
    const out = path.join(tmp, 'data', 'shard-3.ndjson');
    const size = () => { try { return fs.statSync(out).size; } catch { return 0; } };
    assert.ok(await waitFor(() => size() > 100_000 && fs.existsSync(path.join(tmp, 'data', 'shard-3.checkpoint')), 60_000), 'shard 3 under way');
    docker(['kill', '--signal', 'KILL', victimName]);
    const killed = await victim;
    assert.equal(killed.code, 137, `killed: ${killed.stderr}`);
    for (const r of await Promise.all(others)) assert.equal(r.code, 0, r.stderr);
    const refused = await mergeInImage();
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /shard-3\.json: shard 3 of 4 is incomplete/);
    const again = await collect(pod(3), 180_000);
    assert.equal(again.code, 0, again.stderr);
    const m = await mergeInImage();
    assert.equal(m.code, 0, m.stderr);
    checkMerged();
    for (let k = 0; k < 4; k++) assert.equal(fleet!.xdpAttached(k), false, `XDP detached on machine ${k}`);
  });

  test('serve from the image: the DaemonSet\'s command and config, backends as the fleet was built, clean stop', async () => {
    const { argv } = serveDaemon();
    const conf = path.join(tmp, 'serve');
    fs.mkdirSync(conf);
    fs.writeFileSync(path.join(conf, 'serve.yaml'), `
defaults: { interval: 300ms, timeout: 200ms, rise: 1, fall: 1, jitter: 0 }
listen: { http: "127.0.0.1:19108" }
backends:
  - { name: open80, host: 198.18.0.10, port: 80 }
  - { name: closed443, host: 198.18.0.11, port: 443 }
  - { name: dropped, host: 198.18.4.12, port: 80 }
  - { name: rejected, host: 198.18.5.12, port: 8080 }
`);
    const name = `${PREFIX}d`;
    const child = spawn(DOCKER, ['run', '--rm', '--name', name, '--network', `container:${machines[0]}`, ...CAPS, '--read-only',
      '--security-opt', 'no-new-privileges', '-v', `${conf}:/etc/halfopen:ro`, IMAGE!, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    const done = collect(child, 60_000);
    try {
      const get = (p: string) => fleet!.exec(0, process.execPath, ['-e',
        `fetch('http://127.0.0.1:19108${p}').then(async r => process.stdout.write(await r.text())).catch(() => {})`]);
      const want = { open80: 'up', closed443: 'down', dropped: 'down', rejected: 'down' };
      const states = () => {
        try { return Object.fromEntries((JSON.parse(get('/backends')) as Array<{ name: string; state: string }>).map((b) => [b.name, b.state])); } catch { return {}; }
      };
      assert.ok(await waitFor(() => JSON.stringify(states()) === JSON.stringify(want), 20_000), `backends: ${JSON.stringify(states())}`);
      assert.equal(get('/healthz').trim(), 'ok');
      assert.match(get('/metrics'), /halfopen_backend_up\{[^}]*backend="open80"[^}]*\} 1/);
      assert.equal(fleet!.xdpAttached(0), true, 'serve runs its matcher in XDP on the machine\'s interface');
    } finally {
      docker(['stop', '-t', '10', name]);
    }
    const r = await done;
    assert.equal(r.code, 0, `serve exits cleanly on SIGTERM: ${r.stderr}`);
    assert.equal(fleet!.xdpAttached(0), false, 'XDP detached');
  });

  test('nothing left behind: containers, XDP, host links, nftables, forwarding', () => {
    fleet?.remove();
    for (const m of machines) {
      execFileSync('ip', ['netns', 'del', m]);
      docker(['rm', '-f', m]);
    }
    machines.length = 0;
    fleet = undefined;
    assert.equal(hostState(), before0);
    assert.throws(() => execFileSync('ip', ['link', 'show', 'docker0'], { stdio: 'ignore' }), 'no docker0');
  });
});
