// Integration tier: real namespaces, real XDP on veth, real listeners. The
// prober runs inside its own namespace; nothing leaves the two namespaces.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { heldBy, anyLeft } from '../helpers/bpf-objects';
import { Fleet, FleetSpec } from '../../src/fleet/fleet';
import { lab20x2, assertExact } from '../helpers/lab';
import { mustParseAddress } from '../../src/targets/address';
import { netnsSkipReason } from '../helpers/privileges';
import { runCli, startCli, collect, parseNdjson } from '../helpers/cli';
import { waitFor } from '../helpers/serve';

const skip = netnsSkipReason();

const SPEC: FleetSpec = lab20x2('sweep');

/**
 * A common prober hardening rule: drop input that conntrack finds INVALID. The
 * SYNs bypass conntrack (AF_PACKET), so every SYN+ACK is INVALID to it, and a
 * kernel RST would never be sent: only an RST from XDP, which runs before
 * netfilter, keeps the backends clean. Removed with `nft delete table inet CT_TABLE`.
 */
const CT_TABLE = 'ho_ct_invalid';
function dropConntrackInvalid(fleet: Fleet): void {
  execFileSync('ip', ['netns', 'exec', fleet.prober, 'nft', '-f', '-'], {
    input: `table inet ${CT_TABLE} {\n chain input {\n  type filter hook input priority 0; policy accept;\n  ct state invalid counter drop\n }\n}\n`,
  });
}


describe('sweep against a namespace fleet', { skip }, () => {
  let fleet: Fleet;
  before(async () => { fleet = await Fleet.create(SPEC); });
  after(() => fleet?.remove());

  test('a /20 × 2 ports, IPv4 and IPv6 in one run, matches ground truth exactly', async () => {
    const r = await runCli(['sweep', SPEC.v4!, SPEC.v6!, '-p', '80,81', '--format', 'ndjson', '--timeout', '500', '--rate', '50000', '--no-progress'], fleet);
    const tally = assertExact(fleet, r, 2 * 4096 * 2, (x) => `${x.state}/${x.reason}`);
    // Per family: 3584 open on 80 (4096 - 2×256), 3584 closed on 81, 2×256 filtered, 2×256 unreachable.
    assert.deepEqual(tally, {
      'open/syn-ack': 7168, 'closed/rst': 7168, 'filtered/no-response': 1024,
      'unreachable/icmp-3-1': 512, 'unreachable/icmp-1-3': 512,
    });
    assert.match(r.stderr, /16384 probes .* 7168 open, 7168 closed, 1024 filtered, 1024 unreachable/);
    assert.deepEqual(fleet.acceptedConnections(), [], 'no connection reached the application');
    assert.equal(fleet.synRecvCount(), 0, 'no half-open sockets left on the servers');
    assert.equal(fleet.xdpAttached(), false, 'XDP detached after the run');
  });

  // The engine's phase lines (HALFOPEN_DEBUG) name the XDP mode and send path it chose.
  const variants: [string[], RegExp][] = [
    // Raw-socket SYNs went through conntrack: the kernel's RST closes their entries.
    [['--send-path', 'raw'], /XDP generic on \S+, raw sends, RSTs from the kernel/],
    [['--send-path', 'raw', '--rst', 'xdp'], /XDP generic on \S+, raw sends, RSTs from XDP/],
    [['--send-path', 'packet'], /XDP generic on \S+, packet sends, RSTs from XDP/],
    [['--xdp-mode', 'native'], /XDP native on \S+, \w+ sends, RSTs from the kernel/],
    [['--xdp-mode', 'generic'], /XDP generic on \S+, \w+ sends, RSTs from XDP/],
    [['--rst', 'kernel'], /XDP generic on \S+, \w+ sends, RSTs from the kernel/],
  ];
  for (const [variant, chosen] of variants) {
    test(`${variant.join(' ')}: the same exact verdicts`, async () => {
      const r = await runCli(['sweep', '198.18.3.0/24', '198.18.4.0/30', '198.18.5.0/30', '2001:2::300/120', '-p', '80,81', '--format', 'ndjson',
        '--timeout', '300', '--no-progress', ...variant], fleet, undefined, ['env', 'HALFOPEN_DEBUG=1']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, chosen);
      assert.doesNotMatch(r.stderr, /warning/, 'veth has native XDP: no fallback warning');
      const results = parseNdjson(r.stdout);
      assert.equal(results.length, (256 + 4 + 4 + 256) * 2);
      for (const x of results) assert.equal(x.state, fleet.truth(mustParseAddress(x.ip), x.port), `${x.ip}:${x.port}`);
      assert.equal(fleet.synRecvCount(), 0, 'no half-open sockets left on the servers');
    });
  }

  test('a prober firewall dropping conntrack-INVALID packets cannot leave backends half-open', async () => {
    dropConntrackInvalid(fleet);
    try {
      const r = await runCli(['sweep', '198.18.6.0/24', '2001:2::600/120', '-p', '80', '--format', 'ndjson', '--timeout', '300', '--no-progress'], fleet);
      assert.equal(r.code, 0, r.stderr);
      const results = parseNdjson(r.stdout);
      assert.equal(results.length, 512);
      assert.ok(results.every((x) => x.state === 'open'), 'every probe open');
      assert.match(fleet.exec('prober', 'nft', ['list', 'table', 'inet', CT_TABLE]), /counter packets 0 /, 'no SYN+ACK reached netfilter');
      assert.equal(fleet.synRecvCount(), 0, 'no half-open sockets left on the servers');
      assert.deepEqual(fleet.acceptedConnections(), [], 'no connection reached the application');
    } finally {
      fleet.exec('prober', 'nft', ['delete', 'table', 'inet', CT_TABLE]);
    }
  });

  test('--rst xdp in native mode: the RSTs leave as XDP_TX frames, and arrive when the peer veth runs NAPI', async () => {
    // Native veth XDP_TX needs NAPI on the peer: an XDP_PASS program gives it.
    fleet.attachFleetXdp('XDP_PASS');
    dropConntrackInvalid(fleet);
    try {
      const r = await runCli(['sweep', '198.18.7.0/24', '2001:2::700/120', '-p', '80', '--format', 'ndjson', '--timeout', '300', '--no-progress',
        '--xdp-mode', 'native', '--rst', 'xdp'], fleet, undefined, ['env', 'HALFOPEN_DEBUG=1']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /XDP native on \S+, \w+ sends, RSTs from XDP/);
      assert.match(r.stderr, /warning: \S+ is a veth in native XDP mode: its XDP_TX frames are dropped unless the peer runs NAPI/);
      const results = parseNdjson(r.stdout);
      assert.equal(results.length, 512, 'one row per probe: 256 IPv4 and 256 IPv6 targets on port 80');
      assert.deepEqual(new Set(results.map((x) => `${x.ip} ${x.port}`)).size, 512, 'each probe once');
      assert.ok(results.every((x) => x.state === 'open'), 'every probe open');
      assert.match(fleet.exec('prober', 'nft', ['list', 'table', 'inet', CT_TABLE]), /counter packets 0 /, 'no SYN+ACK reached netfilter');
      assert.equal(fleet.synRecvCount(), 0, 'no half-open sockets left on the servers: the full checksums were accepted');
    } finally {
      fleet.exec('prober', 'nft', ['delete', 'table', 'inet', CT_TABLE]);
      fleet.detachFleetXdp();
    }
  });

  test('the installed bin works through npx inside the namespace', async () => {
    const out = execFileSync('ip', ['netns', 'exec', fleet.prober, 'npx', '--no-install', 'halfopen', 'sweep', '198.18.0.1', '198.18.4.1', '[2001:2::5]:81', '-p', '80', '--format', 'csv', '--timeout', '300', '--no-progress'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const rows = out.trim().split('\n').slice(1).map((l) => l.split(',').slice(0, 4).join(',')).sort();
    assert.deepEqual(rows, ['198.18.0.1,80,open,syn-ack', '198.18.4.1,80,filtered,no-response', '2001:2::5,81,closed,rst']);
  });

  test('a killed run leaves no XDP program behind (bpf_link)', async () => {
    const child = startCli(['sweep', SPEC.v4!, '-p', '80', '--rate', '200', '--format', 'ndjson', '--no-progress'], fleet);
    const done = collect(child, 30_000);
    let progs: number[] = [];
    try {
      assert.ok(await waitFor(() => fleet.xdpAttached() && (progs = heldBy('prog', child.pid!)).length > 0, 10_000), 'XDP attached while the sweep runs');
    } finally {
      child.kill('SIGKILL');
      await done;
    }
    assert.ok(await waitFor(() => !fleet.xdpAttached(), 5_000), 'XDP detached by the kernel');
    assert.ok(await waitFor(() => !anyLeft('prog', progs), 5_000), 'the killed run\'s programs unloaded');
  });

  test('Ctrl-C mid-sweep writes what is known, a summary, and detaches', async () => {
    const child = startCli(['sweep', SPEC.v4!, '-p', '80', '--rate', '1000', '--format', 'ndjson', '--no-progress'], fleet);
    const done = collect(child, 30_000);
    assert.ok(await waitFor(() => fleet.xdpAttached(), 10_000));
    await sleep(700);
    child.kill('SIGINT');
    const r = await done;
    assert.equal(r.code, 130);
    assert.match(r.stderr, /interrupted/);
    assert.match(r.stderr, /probes in .*\(interrupted\)/);
    const results = parseNdjson(r.stdout);
    assert.ok(results.length > 0 && results.length < 4096, `partial results (${results.length})`);
    for (const x of results) assert.equal(x.state, fleet.truth(mustParseAddress(x.ip), x.port));
    assert.equal(fleet.xdpAttached(), false);
  });

  test('a lost first SYN is retried into the right verdict', async () => {
    // The fleet drops the first SYN to 198.18.3.3:80 (a 50-byte quota holds one 44-byte SYN).
    const table = (name: string) => `table inet ${name} {\n chain input {\n  type filter hook input priority -10;\n` +
      `  ip daddr 198.18.3.3 tcp dport 80 tcp flags syn quota until 50 bytes drop\n }\n}\n`;
    const withDrop = async (name: string, args: string[]) => {
      execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', '-f', '-'], { input: table(name) });
      try {
        return await runCli(['sweep', '198.18.3.3', '-p', '80', '--format', 'ndjson', '--timeout', '300', '--no-progress', ...args], fleet);
      } finally {
        execFileSync('ip', ['netns', 'exec', fleet.fleet, 'nft', 'delete', 'table', 'inet', name]);
      }
    };
    const once = await withDrop('ho_drop_once_a', ['--retries', '0']);
    assert.equal(parseNdjson(once.stdout)[0].state, 'filtered', 'without a retry the lost SYN reads as filtered');
    const retried = await withDrop('ho_drop_once_b', ['--retries', '1']);
    assert.equal(parseNdjson(retried.stdout)[0].state, 'open');
    assert.match(retried.stderr, /1 retried/);
  });
});

describe('bad input: one line on stderr and exit 2', { skip }, () => {
  let fleet: Fleet;
  before(async () => { fleet = await Fleet.create({ tag: 'usage', v4: '198.18.0.0/24', open: [] }); });
  after(() => fleet?.remove());

  const cases: Array<[string, string[], RegExp]> = [
    ['port 0', ['sweep', '198.18.0.1', '-p', '0'], /port/],
    ['port above 65535', ['sweep', '198.18.0.1', '-p', '70000'], /port/],
    ['malformed address', ['sweep', '198.18.0.300', '-p', '80'], /invalid target "198\.18\.0\.300"/],
    ['malformed CIDR', ['sweep', '198.18.0.0/33', '-p', '80'], /198\.18\.0\.0\/33/],
    ['empty after excludes', ['sweep', '198.18.0.0/30', '-p', '80', '--exclude', '198.18.0.0/29'], /no targets left after excludes/],
    ['unknown interface', ['sweep', '198.18.0.1', '-p', '80', '--interface', 'nosuch0'], /unknown interface "nosuch0"/],
    ['shard out of range', ['sweep', '198.18.0.0/24', '-p', '80', '--seed', '1', '--shard', '5/4'], /shard/],
    ['--shard-index out of range', ['sweep', '198.18.0.0/24', '-p', '80', '--seed', '1', '--shards', '4', '--shard-index', '4'], /invalid --shard-index 4: expected 0 to 3/],
    ['--shards without an index', ['sweep', '198.18.0.0/24', '-p', '80', '--seed', '1', '--shards', '4'], /--shards 4 needs --shard-index/],
    ['--shards without --seed', ['sweep', '198.18.0.0/24', '-p', '80', '--shards', '4', '--shard-index', '0'], /--shards needs --seed/],
    ['rate not a number', ['sweep', '198.18.0.1', '-p', '80', '--rate', 'fast'], /invalid --rate "fast"/],
    ['no ports', ['sweep', '198.18.0.1'], /no ports/],
  ];
  for (const [name, args, re] of cases) {
    test(name, async () => {
      const r = await runCli(args, fleet);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.equal(r.stdout, '');
    });
  }

  test('CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW without CAP_PERFMON, where the verifier wants it: one line naming it', async (t) => {
    const r = await runCli(['sweep', '198.18.0.1', '-p', '80', '--timeout', '200'], fleet, 30_000, ['setpriv', '--bounding-set', '-all,+net_admin,+net_raw,+bpf']);
    if (r.code === 0) return t.skip('this kernel\'s verifier accepts the program without CAP_PERFMON');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /needs CAP_PERFMON as well/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });

  test('without privileges: names the missing capabilities', async () => {
    const r = await runCli(['sweep', '198.18.0.1', '-p', '80'], fleet, 30_000, ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /needs CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });
});
