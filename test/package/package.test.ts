// The Debian package as a user meets it: `npm run package` builds it, a clean
// Debian 12 root (debootstrap --variant=minbase bookworm, cached as a tarball)
// installs it with apt, and then, in that root: check_tcp_half_open from
// /usr/lib/nagios/plugins answers OK and CRITICAL against a namespace fleet
// with no Node.js anywhere on the PATH; `halfopen --version` and `man
// halfopen` work; serve runs as the halfopen user with exactly the unit's
// capabilities; `dpkg -r` removes it and `dpkg -P` takes the user too.
// Every mount, the root and the fleet are removed in `after`, also on failure.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet } from '../../src/fleet/fleet';
import { netnsSkipReason } from '../helpers/privileges';
import { ROOT as REPO, collect } from '../helpers/cli';
import { waitFor } from '../../src/wait';

const CACHE = process.env.HALFOPEN_CACHE ?? '/var/cache/halfopen';
/** The same tarball, made the same way, as scripts/image.sh's container base. */
const BASE_TAR = path.join(CACHE, 'debian-bookworm-minbase.tar');
const MIRROR = process.env.DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
const VERSION: string = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')).version;
const HTTP = 9195;

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
function skipReason(): string | false {
  const r = netnsSkipReason();
  if (r) return r;
  for (const [cmd, pkg] of [['debootstrap', 'debootstrap'], ['dpkg-deb', 'dpkg'], ['dpkg-shlibdeps', 'dpkg-dev'], ['lintian', 'lintian']])
    if (!has(cmd)) return `needs ${cmd} (apt-get install ${pkg}; scripts/setup.sh does)`;
  return false;
}
const skip = skipReason();

const sh = (cmd: string, args: string[], opts: { timeout?: number; input?: string } = {}): SpawnSyncReturns<string> =>
  spawnSync(cmd, args, { encoding: 'utf8', timeout: opts.timeout ?? 600_000, input: opts.input, maxBuffer: 64 << 20 });
function must(cmd: string, args: string[], opts: { timeout?: number } = {}): string {
  const r = sh(cmd, args, opts);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status ?? r.signal}\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  return r.stdout;
}

/** The cached minbase root, made once (under a lock shared with scripts/image.sh's users). */
function baseTarball(): string {
  fs.mkdirSync(CACHE, { recursive: true });
  must('flock', ['-w', '1200', path.join(CACHE, 'debootstrap.lock'), 'sh', '-c', `
set -e
[ -s "${BASE_TAR}" ] && exit 0
tmp=$(mktemp -d /tmp/halfopen-debootstrap.XXXXXX)
trap 'rm -rf --one-file-system "$tmp"' EXIT
debootstrap --variant=minbase bookworm "$tmp/root" "${MIRROR}" > "$tmp/log" 2>&1 || { tail -20 "$tmp/log" >&2; exit 1; }
rm -rf "$tmp"/root/var/lib/apt/lists/* "$tmp"/root/var/cache/apt/*.bin "$tmp"/root/var/cache/apt/archives/*.deb "$tmp"/root/var/log/*.log
tar -C "$tmp/root" --numeric-owner -cf "${BASE_TAR}.tmp" .
mv "${BASE_TAR}.tmp" "${BASE_TAR}"
`], { timeout: 1_800_000 });
  return BASE_TAR;
}

describe('Debian package in a clean Debian 12 root', { skip }, () => {
  let work = '';
  let root = '';
  let deb = '';
  const mounts: string[] = [];
  let fleet: Fleet | undefined;

  const mount = (args: string[], target: string) => {
    fs.mkdirSync(target, { recursive: true });
    must('mount', [...args, target]);
    mounts.push(target);
  };
  /** A command in the root (host network namespace: apt, dpkg, man). */
  const inRoot = (args: string[], timeout?: number) => sh('chroot', [root, 'env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8', 'HOME=/root', ...args], { timeout });
  /** argv that runs a command in the root inside the fleet's prober namespace, with /sys of that namespace. */
  const inProber = (args: string[]) => [...fleet!.proberArgv(), 'sh', '-c', `mount -t sysfs sysfs "$0/sys" && exec chroot "$0" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"`, root, ...args];

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-pkgtest-'));
    deb = must('bash', [path.join(REPO, 'scripts', 'package.sh'), path.join(work, 'out')], { timeout: 1_200_000 }).trim().split('\n').pop()!;
    root = path.join(work, 'root');
    fs.mkdirSync(root);
    must('tar', ['-C', root, '--numeric-owner', '-xf', baseTarball()]);
    mount(['-t', 'proc', 'proc'], path.join(root, 'proc'));
    mount(['--bind', '/dev'], path.join(root, 'dev'));
    // Downloaded .debs are kept between runs; the root itself is new each time.
    fs.mkdirSync(path.join(CACHE, 'apt-archives', 'partial'), { recursive: true });
    mount(['--bind', path.join(CACHE, 'apt-archives')], path.join(root, 'var/cache/apt/archives'));
    fs.copyFileSync('/etc/resolv.conf', path.join(root, 'etc/resolv.conf'));
    // No service starts inside the root (there is no systemd in it either).
    fs.writeFileSync(path.join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    fs.copyFileSync(deb, path.join(root, 'tmp', path.basename(deb)));
    fleet = await Fleet.create({ tag: 'pkg', v4: '198.18.2.0/28', v6: '2001:2::200/124', open: [80] });
  });

  after(async () => {
    fleet?.remove();
    for (const m of mounts.reverse()) {
      if (sh('umount', [m]).status !== 0) sh('umount', ['-l', m]);
    }
    if (work) {
      const left = sh('findmnt', ['-rn', '-o', 'TARGET']).stdout.split('\n').filter((t) => t.startsWith(work));
      if (left.length) throw new Error(`still mounted, not removing ${work}: ${left.join(' ')}`);
      fs.rmSync(work, { recursive: true, force: true });
    }
  });

  test('npm run package built a lintian-clean halfopen_VERSION_amd64.deb with the expected contents', () => {
    assert.equal(path.basename(deb), `halfopen_${VERSION}_amd64.deb`);
    const files = must('dpkg-deb', ['-c', deb]).split('\n').map((l) => l.split(/\s+/).slice(5).join(' ').replace(/^\.\//, '/').replace(/ -> .*$/, ''));
    for (const f of ['/usr/bin/halfopen', '/usr/lib/nagios/plugins/check_tcp_half_open', '/usr/lib/halfopen/node', '/usr/lib/halfopen/dist/src/cli/main.js',
      '/usr/lib/halfopen/native/addon/build/Release/halfopen.node', '/usr/lib/halfopen/native/plugin/build/check_tcp_half_open', '/usr/lib/halfopen/bpf/halfopen.bpf.o', '/usr/lib/halfopen/node_modules/commander/package.json',
      '/etc/halfopen/serve.yaml', '/lib/systemd/system/halfopen.service', '/usr/share/man/man1/halfopen.1.gz', '/usr/share/man/man8/check_tcp_half_open.8.gz',
      '/usr/share/halfopen/prometheus/halfopen.rules.yml', '/usr/share/halfopen/grafana/halfopen.json', '/usr/share/doc/halfopen/copyright'])
      assert.ok(files.includes(f), f);
    assert.ok(!files.some((f) => f.includes('/test/') || f.includes('/bench/')), 'no tests or benchmarks');
    assert.equal(must('dpkg-deb', ['-f', deb, 'Version']).trim(), VERSION);
    const conffiles = sh('sh', ['-c', `dpkg-deb --ctrl-tarfile "${deb}" | tar -xOf - ./conffiles`]).stdout;
    assert.equal(conffiles.trim(), '/etc/halfopen/serve.yaml');
    const lint = sh('lintian', ['--fail-on', 'error', deb]);
    assert.equal(lint.status, 0, lint.stdout + lint.stderr);
  });

  test('apt installs it into the clean root, with its dependencies from Debian', () => {
    const update = inRoot(['apt-get', 'update', '-qq'], 600_000);
    assert.equal(update.status, 0, update.stderr);
    const inst = inRoot(['sh', '-c', `DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/${path.basename(deb)}`], 900_000);
    assert.equal(inst.status, 0, inst.stdout.slice(-3000) + inst.stderr.slice(-3000));
    assert.match(inRoot(['dpkg-query', '-W', '-f=${Status} ${Version}', 'halfopen']).stdout, new RegExp(`^install ok installed ${VERSION.replace(/\./g, '\\.')}$`));
    assert.match(inRoot(['getent', 'passwd', 'halfopen']).stdout.trim(), /^halfopen:x:\d+:\d+:.*:\/var\/lib\/halfopen:\/usr\/sbin\/nologin$/);
    assert.equal(inRoot(['sh', '-c', 'command -v node nodejs']).stdout, '', 'no Node.js on the PATH of the root');
  });

  test('check_tcp_half_open from /usr/lib/nagios/plugins: OK on an open port, CRITICAL on a closed one, without Node', async () => {
    const run = async (args: string[]) => collect(spawn(inProber([])[0], inProber(['/usr/lib/nagios/plugins/check_tcp_half_open', ...args]).slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }), 30_000);
    const ok = await run(['198.18.2.1', '80']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^TCP OK - [\d.]+ second response time on 198\.18\.2\.1 port 80\|time=/);
    const ok6 = await run(['-H', '2001:2::201', '-p', '80', '-t', '2']);
    assert.equal(ok6.code, 0, ok6.stdout + ok6.stderr);
    const closed = await run(['198.18.2.2', '81']);
    assert.equal(closed.code, 2, closed.stdout + closed.stderr);
    assert.match(closed.stdout, /^TCP CRITICAL - Connection refused \(RST\) on 198\.18\.2\.2 port 81/);
    const ldd = inRoot(['ldd', '/usr/lib/nagios/plugins/check_tcp_half_open']).stdout;
    assert.doesNotMatch(ldd, /libnode|libbpf|libstdc\+\+|libelf/, ldd);
    // `halfopen check` is that plugin, run by the installed halfopen.
    const viaHalfopen = await collect(spawn(inProber([])[0], inProber(['halfopen', 'check', '198.18.2.2', '81']).slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }), 30_000);
    assert.equal(viaHalfopen.code, 2, viaHalfopen.stdout + viaHalfopen.stderr);
    assert.match(viaHalfopen.stdout, /^TCP CRITICAL - Connection refused \(RST\) on 198\.18\.2\.2 port 81/);
  });

  test('halfopen --version and man halfopen work in the root', () => {
    const v = inRoot(['halfopen', '--version']);
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout.trim(), VERSION);
    const m = inRoot(['sh', '-c', 'MANPAGER=cat MANWIDTH=80 man halfopen']);
    assert.equal(m.status, 0, m.stderr);
    assert.match(m.stdout, /halfopen - TCP half-open prober/);
    assert.match(m.stdout, /EXIT STATUS/);
    const m8 = inRoot(['sh', '-c', 'MANPAGER=cat MANWIDTH=80 man 8 check_tcp_half_open']);
    assert.equal(m8.status, 0, m8.stderr);
    assert.match(m8.stdout, /CHECK_TCP_HALF_OPEN\(8\)/);
  });

  test("serve runs as the halfopen user with only the unit's capabilities, as the unit runs it", async () => {
    fs.writeFileSync(path.join(root, 'etc/halfopen/pkgtest.yaml'), `
defaults: { interval: 200ms, timeout: 100ms, rise: 1, fall: 1 }
listen: { http: "127.0.0.1:${HTTP}" }
backends:
  - { name: up1, host: 198.18.2.1, port: 80 }
  - { name: down1, host: 198.18.2.2, port: 81 }
`);
    // The set the installed unit grants, e.g. "CAP_BPF CAP_NET_ADMIN" -> "-all,+bpf,+net_admin".
    const unit = fs.readFileSync(path.join(root, 'lib/systemd/system/halfopen.service'), 'utf8');
    const granted = /^AmbientCapabilities=(.*)$/m.exec(unit)![1].trim().split(/\s+/);
    assert.equal(/^CapabilityBoundingSet=(.*)$/m.exec(unit)![1].trim(), granted.join(' '));
    const caps = ['-all', ...granted.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`)].join(',');
    const CAP_BITS: Record<string, number> = { CAP_NET_ADMIN: 12, CAP_NET_RAW: 13, CAP_PERFMON: 38, CAP_BPF: 39 };
    const mask = granted.reduce((m, c) => m | (1n << BigInt(CAP_BITS[c])), 0n).toString(16).padStart(16, '0');
    const argv = inProber(['setpriv', '--reuid=halfopen', '--regid=halfopen', '--init-groups', `--inh-caps=${caps}`, `--ambient-caps=${caps}`, `--bounding-set=${caps}`,
      '--no-new-privs', '/usr/bin/halfopen', 'serve', '--config', '/etc/halfopen/pkgtest.yaml']);
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => { stderr += d; });
    const done = collect(child, 60_000);
    try {
      assert.ok(await waitFor(() => /checking 2 backends/.test(stderr) || child.exitCode !== null, 20_000), stderr);
      assert.match(stderr, /checking 2 backends/);
      const get = (p: string) => fleet!.exec('prober', process.execPath, ['-e', `fetch('http://127.0.0.1:${HTTP}${p}').then(async r => process.stdout.write(await r.text()))`]);
      assert.ok(await waitFor(() => JSON.parse(get('/backends')).every((b: any) => b.counters.checks >= 2), 10_000));
      const states = Object.fromEntries(JSON.parse(get('/backends')).map((b: any) => [b.name, b.state]));
      assert.deepEqual(states, { up1: 'up', down1: 'down' });
      // The daemon's own view of its privileges: the halfopen user, exactly three capabilities.
      const status = fs.readFileSync(`/proc/${findServePid(child.pid!)}/status`, 'utf8');
      assert.match(status, new RegExp(`^CapEff:\\s*${mask}$`, 'm'));
      assert.match(status, new RegExp(`^CapBnd:\\s*${mask}$`, 'm'));
      assert.match(status, /^NoNewPrivs:\s*1$/m);
    } finally {
      child.kill('SIGTERM');
      const r = await done;
      assert.equal(r.code, 0, stderr);
    }
    assert.match(stderr, /SIGTERM: shutting down/);
  });

  test('dpkg -r removes it and leaves nothing running; dpkg -P removes the user, the config and the state', () => {
    const r = inRoot(['dpkg', '-r', 'halfopen']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    for (const f of ['usr/bin/halfopen', 'usr/lib/nagios/plugins/check_tcp_half_open', 'usr/lib/halfopen', 'lib/systemd/system/halfopen.service'])
      assert.ok(!fs.existsSync(path.join(root, f)), `${f} removed`);
    assert.ok(fs.existsSync(path.join(root, 'etc/halfopen/serve.yaml')), 'the conffile stays until purge');
    assert.equal(sh('pgrep', ['-u', String(uidIn(root, 'halfopen'))]).stdout, '', 'no process of the halfopen user');
    fs.rmSync(path.join(root, 'etc/halfopen/pkgtest.yaml'), { force: true }); // ours, not the package's
    const p = inRoot(['dpkg', '-P', 'halfopen']);
    assert.equal(p.status, 0, p.stdout + p.stderr);
    assert.ok(!fs.existsSync(path.join(root, 'etc/halfopen')), '/etc/halfopen removed');
    assert.notEqual(inRoot(['getent', 'passwd', 'halfopen']).status, 0, 'user removed');
    assert.ok(!fs.existsSync(path.join(root, 'var/lib/halfopen')));
    assert.equal(inRoot(['dpkg-query', '-W', '-f=${Status}', 'halfopen']).stdout.includes('installed'), false);
  });
});

/** The uid of `user` in the root's passwd (-1 when it has none). */
function uidIn(root: string, user: string): number {
  const line = fs.readFileSync(path.join(root, 'etc/passwd'), 'utf8').split('\n').find((l) => l.startsWith(`${user}:`));
  return line ? Number(line.split(':')[2]) : -1;
}

/** serve's PID: the process of the chain under `pid` (ip → sh → chroot → env → setpriv → sh → node, each exec'd) that runs halfopen. */
function findServePid(pid: number): number {
  const children = (p: number): number[] => {
    try {
      return fs.readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch { return []; }
  };
  const queue = [pid];
  for (let i = 0; i < queue.length && i < 64; i++) {
    const p = queue[i];
    let cmd = '';
    try { cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8'); } catch { continue; }
    if (cmd.includes('/usr/lib/halfopen/node')) return p;
    queue.push(...children(p));
  }
  throw new Error(`no halfopen process under ${pid}`);
}
