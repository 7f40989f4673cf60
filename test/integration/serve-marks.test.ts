// `halfopen serve` with per-backend `source` and `mark` (and both in
// `defaults`): nftables counters in the prober namespace's output hook prove
// that every SYN to each backend carried that backend's mark and source, and
// each backend is still checked correctly. Also: the start-up and reload
// refusals (a source not on this host, a mark that policy routing sends out of
// another interface than the matcher's).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fleet, PROBER_V4, PROBER_V6 } from '../../src/fleet/fleet';
import { netnsSkipReason } from '../helpers/privileges';
import { runCli } from '../helpers/cli';
import { ServeProcess, waitFor } from '../helpers/serve';

const skip = netnsSkipReason();
const HTTP = 9190;
/** Second source addresses on the prober's veth; the fleet routes them back. */
const SRC2_V4 = '198.19.254.1', SRC2_V6 = '2001:2:0:fffe::1';
const TABLE = 'halfopen_marks';

interface Want { name: string; host: string; port: number; mark?: number; source?: string; open: boolean; yaml: string }

// defaults: { mark: 0x20 }: the 0x20 backends inherit it, every other one overrides it.
const BACKENDS: Want[] = [
  { name: 'm10-open', host: '198.18.0.10', port: 80, mark: 0x10, open: true, yaml: 'mark: 0x10' },
  { name: 'm10-closed', host: '198.18.0.11', port: 81, mark: 0x10, open: false, yaml: 'mark: 16' },
  { name: 'm10-v6', host: '2001:2::10', port: 80, mark: 0x10, open: true, yaml: 'mark: "0x10"' },
  { name: 'm20-a', host: '198.18.0.20', port: 80, mark: 0x20, open: true, yaml: '' },
  { name: 'm20-b', host: '198.18.0.21', port: 80, mark: 0x20, open: true, yaml: '' },
  { name: 'src2-v4', host: '198.18.0.30', port: 80, source: SRC2_V4, open: true, yaml: `mark: 0, source: ${SRC2_V4}` },
  { name: 'src2-v6', host: '2001:2::30', port: 80, source: SRC2_V6, open: true, yaml: `mark: 0, source: "${SRC2_V6}"` },
  { name: 'src2-m10', host: '198.18.0.31', port: 80, source: SRC2_V4, mark: 0x10, open: true, yaml: `mark: 0x10, source: ${SRC2_V4}` },
  { name: 'plain-open', host: '198.18.0.40', port: 80, open: true, yaml: 'mark: 0' },
  { name: 'plain-closed', host: '198.18.0.41', port: 81, open: false, yaml: 'mark: 0' },
  { name: 'plain-v6', host: '2001:2::40', port: 80, open: true, yaml: 'mark: 0' },
];

function config(list: Want[], extra = ''): string {
  const host = (h: string) => h.includes(':') ? `"${h}"` : h;
  return `defaults: { interval: 300ms, timeout: 200ms, rise: 2, fall: 2, jitter: 0, initial: down, mark: 0x20 }
listen: { http: "127.0.0.1:${HTTP}" }
backends:
${list.map((b) => `  - { name: ${b.name}, host: ${host(b.host)}, port: ${b.port}${b.yaml ? `, ${b.yaml}` : ''} }`).join('\n')}
${extra}`;
}

/**
 * Per backend, two counters in the prober's output hook: every SYN to it
 * ("all"), and the SYNs that carry exactly its mark and source ("ok"). For
 * the plain backends "ok" counts SYNs with no mark from the link's own
 * address (with marks in the config, serve sends every SYN on raw sockets,
 * so theirs pass the hook too).
 */
function nftRules(list: Want[]): string {
  const rules: string[] = [];
  const syn = 'tcp flags & (syn | ack) == syn';
  for (const b of list) {
    const v6 = b.host.includes(':');
    const ipk = v6 ? 'ip6' : 'ip';
    const to = `${ipk} daddr ${b.host} tcp dport ${b.port} ${syn}`;
    const src = b.source ?? (v6 ? PROBER_V6 : PROBER_V4);
    rules.push(`${to} counter comment "${b.name}:all"`);
    rules.push(`${to} meta mark ${b.mark ?? 0} ${ipk} saddr ${src} counter comment "${b.name}:ok"`);
  }
  rules.push(`meta mark 0x10 ${syn} counter comment "any:mark10"`);
  rules.push(`meta mark 0x20 ${syn} counter comment "any:mark20"`);
  rules.push(`ip saddr ${SRC2_V4} ${syn} counter comment "any:src2v4"`);
  rules.push(`ip6 saddr ${SRC2_V6} ${syn} counter comment "any:src2v6"`);
  return `table inet ${TABLE} {\n chain out {\n  type filter hook output priority 0; policy accept;\n  ${rules.join('\n  ')}\n }\n}\n`;
}

function counters(fleet: Fleet): Record<string, number> {
  const doc = JSON.parse(fleet.exec('prober', 'nft', ['-j', 'list', 'table', 'inet', TABLE]));
  const out: Record<string, number> = {};
  for (const item of doc.nftables) {
    const r = item.rule;
    if (!r?.comment) continue;
    const c = r.expr.find((e: any) => e.counter)?.counter;
    out[r.comment] = c?.packets ?? 0;
  }
  return out;
}

/**
 * The counters while serve is stopped (SIGSTOP): nft lists rule by rule, and
 * a SYN sent between two rules' reads would show in one and not the other.
 */
async function countersAtRest(fleet: Fleet, s: ServeProcess): Promise<Record<string, number>> {
  s.signal('SIGSTOP');
  try {
    await new Promise((r) => setTimeout(r, 50));
    return counters(fleet);
  } finally {
    s.signal('SIGCONT');
  }
}

describe('halfopen serve: per-backend source and mark', { skip }, () => {
  let fleet: Fleet;
  let dir: string;
  let file: string;
  let serve: ServeProcess | undefined;

  before(async () => {
    fleet = await Fleet.create({ tag: 'marks', v4: '198.18.0.0/24', v6: '2001:2::/120', open: [80] });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-marks-'));
    file = path.join(dir, 'serve.yaml');
    // The second sources: on the prober's veth, routed back by the fleet. The
    // IPv6 one deprecated (preferred_lft 0) so that the kernel's source
    // selection keeps choosing the link address for everything else.
    fleet.exec('prober', 'ip', ['addr', 'add', `${SRC2_V4}/32`, 'dev', fleet.proberIf]);
    fleet.exec('prober', 'ip', ['addr', 'add', `${SRC2_V6}/128`, 'dev', fleet.proberIf, 'nodad', 'preferred_lft', '0']);
    fleet.exec('fleet', 'ip', ['route', 'add', `${SRC2_V4}/32`, 'via', PROBER_V4, 'dev', fleet.fleetIf]);
    fleet.exec('fleet', 'ip', ['route', 'add', `${SRC2_V6}/128`, 'via', PROBER_V6, 'dev', fleet.fleetIf]);
    const nft = path.join(dir, 'rules.nft');
    fs.writeFileSync(nft, nftRules(BACKENDS));
    fleet.exec('prober', 'nft', ['-f', nft]);
  });
  after(async () => {
    await serve?.stop();
    fleet?.remove(); // the namespaces take the addresses, routes, rules and nftables table with them
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('every SYN carries its backend\'s mark and source, and every backend is checked right', async () => {
    fs.writeFileSync(file, config(BACKENDS));
    serve = new ServeProcess(fleet, file);
    await serve.ready();
    const s = serve;
    assert.match(s.stderr, /raw sends, RSTs from the kernel/);
    assert.ok(await waitFor(() => s.json(HTTP, '/backends').every((b: any) => b.counters.checks >= 4), 10_000), s.stderr);
    const state = Object.fromEntries(s.json(HTTP, '/backends').map((b: any) => [b.name, b]));
    const c = await countersAtRest(fleet, s);
    for (const b of BACKENDS) {
      assert.equal(state[b.name].state, b.open ? 'up' : 'down', `${b.name}: ${JSON.stringify(state[b.name].last)}`);
      assert.equal(state[b.name].last.state, b.open ? 'open' : 'closed', b.name);
      assert.ok(c[`${b.name}:all`] >= 4, `${b.name}: ${c[`${b.name}:all`]} SYNs seen in the output hook`);
      assert.equal(c[`${b.name}:ok`], c[`${b.name}:all`], `${b.name}: every SYN with mark ${b.mark ?? 0} from ${b.source ?? 'the link address'}`);
    }
    // Nothing marked or second-sourced beyond the backends configured so.
    const sum = (pred: (b: Want) => boolean) => BACKENDS.filter(pred).reduce((n, b) => n + c[`${b.name}:all`], 0);
    assert.equal(c['any:mark10'], sum((b) => b.mark === 0x10));
    assert.equal(c['any:mark20'], sum((b) => b.mark === 0x20));
    assert.equal(c['any:src2v4'], sum((b) => b.source === SRC2_V4));
    assert.equal(c['any:src2v6'], sum((b) => b.source === SRC2_V6));
  });

  test('a source address that leaves the host: one warning, its backends down, and up again when it is back', async () => {
    const s = serve!;
    const src2 = BACKENDS.filter((b) => b.source === SRC2_V4).map((b) => b.name);
    fleet.exec('prober', 'ip', ['addr', 'del', `${SRC2_V4}/32`, 'dev', fleet.proberIf]);
    try {
      assert.ok(await waitFor(() => /warning: \d+ SYNs could not be sent \(E\w+\): their checks count as failed/.test(s.stderr), 5000), s.stderr);
      assert.ok(await waitFor(() => src2.every((n) => s.json(HTTP, `/backends/${n}`).state === 'down'), 5000));
      assert.equal(s.json(HTTP, '/backends/src2-v6').state, 'up', 'the other source is not affected');
    } finally {
      fleet.exec('prober', 'ip', ['addr', 'add', `${SRC2_V4}/32`, 'dev', fleet.proberIf]);
    }
    assert.ok(await waitFor(() => src2.every((n) => s.json(HTTP, `/backends/${n}`).state === 'up'), 5000));
  });

  test('SIGHUP: a changed mark takes effect; a source not on this host is rejected and the old config stays', async () => {
    const s = serve!;
    const moved = BACKENDS.map((b) => b.name === 'm10-open' ? { ...b, mark: 0x20, yaml: 'mark: 0x20' } : b);
    const before = counters(fleet)['m10-open:all'];
    fs.writeFileSync(file, config(moved));
    s.signal('SIGHUP');
    assert.ok(await waitFor(() => /reloaded /.test(s.stderr), 5000), s.stderr);
    // The 0x10 rule for m10-open stops counting; its SYNs now count as mark 0x20.
    await new Promise((r) => setTimeout(r, 400));
    const a = await countersAtRest(fleet, s);
    assert.ok(await waitFor(() => counters(fleet)['m10-open:all'] >= a['m10-open:all'] + 3, 5000));
    const b = await countersAtRest(fleet, s);
    assert.ok(b['m10-open:all'] > before);
    assert.equal(b['m10-open:ok'], a['m10-open:ok'], 'no SYN with the old mark after the reload settled');
    assert.ok(b['any:mark20'] - a['any:mark20'] >= b['m10-open:all'] - a['m10-open:all'], 'the new mark on its SYNs');
    assert.equal(s.json(HTTP, '/backends/m10-open').state, 'up', 'kept its state');

    fs.writeFileSync(file, config(moved.map((x) => x.name === 'src2-v4' ? { ...x, yaml: 'source: 198.19.254.99' } : x)));
    s.signal('SIGHUP');
    assert.ok(await waitFor(() => /reload rejected/.test(s.stderr), 5000), s.stderr);
    assert.match(s.stderr, /reload rejected, keeping the running config: backend src2-v4: source 198\.19\.254\.99 is not an address of this host/);
    assert.equal(s.child.exitCode, null, 'still running');
    const code = await s.stop();
    assert.equal(code, 0, s.stderr);
    serve = undefined;
  });

  test('a reload that brings the first mark to an unmarked daemon moves the RSTs to the kernel', async () => {
    const plain = BACKENDS.filter((b) => !b.mark && !b.source);
    fs.writeFileSync(file, config(plain));
    const s = new ServeProcess(fleet, file);
    serve = s;
    await s.ready();
    // Without marks: AF_PACKET sends, and on this veth (generic XDP) the RSTs from XDP.
    assert.match(s.stderr, /packet sends, RSTs from XDP/);
    const rstSent = () => Number(/halfopen_xdp_packets_total\{kind="rst_sent"\} (\d+)/.exec(s.get(HTTP, '/metrics').body)?.[1] ?? NaN);
    assert.ok(await waitFor(() => rstSent() > 0, 5000), 'XDP sends RSTs for the open backends');
    fs.writeFileSync(file, config([...plain, BACKENDS[0]]));
    s.signal('SIGHUP');
    assert.ok(await waitFor(() => /reloaded /.test(s.stderr), 5000), s.stderr);
    await new Promise((r) => setTimeout(r, 300));
    const after = rstSent();
    const checks = () => s.json(HTTP, `/backends/${BACKENDS[0].name}`).counters.checks;
    assert.ok(await waitFor(() => checks() >= 4, 5000));
    assert.equal(rstSent(), after, 'no more XDP RSTs: the kernel answers every SYN+ACK');
    assert.equal(s.json(HTTP, `/backends/${BACKENDS[0].name}`).state, 'up');
    assert.equal(await s.stop(), 0, s.stderr);
    serve = undefined;
  });

  test('start: a source not on this host, or a mark routed out of another interface, is one line and exit 2', async () => {
    fs.writeFileSync(file, config([{ name: 'far', host: '198.18.0.50', port: 80, open: true, yaml: 'source: 198.19.254.99' }]));
    let r = await runCli(['serve', '--config', file], fleet, 30_000);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /backend far: source 198\.19\.254\.99 is not an address of this host/);
    assert.equal(r.stderr.trim().split('\n').filter((l) => !/warning/.test(l)).length, 1, r.stderr);

    // Policy routing: mark 0x30 leaves by another interface (a veth pair inside
    // the prober namespace, gone with it), where no matcher listens.
    fleet.exec('prober', 'ip', ['link', 'add', 'homark0', 'type', 'veth', 'peer', 'name', 'homark1']);
    fleet.exec('prober', 'ip', ['link', 'set', 'homark0', 'up']);
    fleet.exec('prober', 'ip', ['link', 'set', 'homark1', 'up']);
    fleet.exec('prober', 'ip', ['route', 'add', '198.18.0.0/24', 'dev', 'homark0', 'table', '30']);
    fleet.exec('prober', 'ip', ['rule', 'add', 'fwmark', '0x30', 'lookup', '30']);
    fs.writeFileSync(file, config([
      { name: 'ok', host: '198.18.0.51', port: 80, open: true, yaml: '' },
      { name: 'elsewhere', host: '198.18.0.52', port: 80, open: true, yaml: 'mark: 0x30' },
    ]));
    r = await runCli(['serve', '--config', file], fleet, 30_000);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`backend elsewhere: SYNs with mark 0x30 route via homark0, but replies are matched on ${fleet.proberIf}`));
    assert.equal(fleet.xdpAttached(), false, 'nothing left attached');
  });
});
