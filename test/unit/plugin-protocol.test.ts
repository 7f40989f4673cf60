// The plugin socket without a socket: its line protocol (property-based),
// the `listen.plugin` / `plugin.*` config, and the answers serve gives from a
// monitor driven against a scripted probe table (the kernel path and the
// native client are test/integration/plugin-via.test.ts).
//
// A failure prints fast-check's seed and path; rerun one with
// HALFOPEN_FC_SEED=<seed> HALFOPEN_FC_PATH=<path>.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  MAX_DEADLINE_MS, PluginRequest, formatLive, formatRefused, formatRequest, formatVerdict, formatWait, parseAnswer, parseRequest,
} from '../../src/daemon/plugin-protocol';
import { parseConfig } from '../../src/daemon/config';
import { Monitor, ProbeSlots } from '../../src/daemon/monitor';
import { PluginSocket } from '../../src/daemon/plugin-socket';
import { HO_PROBE_STATE_CLOSED, HO_RESULT_PENDING, HO_PROBE_STATE_OPEN } from '../../src/contract.generated';
import type { Verdict } from '../../src/engine/probe-table';

function check<T>(arb: fc.Arbitrary<T>, prop: (v: T) => void, runs = 500): void {
  const seed = process.env.HALFOPEN_FC_SEED === undefined ? undefined : Number(process.env.HALFOPEN_FC_SEED);
  const out = fc.check(fc.property(arb, prop), { numRuns: runs, seed, path: process.env.HALFOPEN_FC_PATH, includeErrorInReport: true });
  if (out.failed) assert.fail(`${fc.defaultReportMessage(out)}\nrerun: HALFOPEN_FC_SEED=${out.seed} HALFOPEN_FC_PATH=${out.counterexamplePath}`);
}

const hostChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:%'.split(''));
const hostArb = fc.string({ unit: hostChar, minLength: 1, maxLength: 255 });
const requestArb: fc.Arbitrary<PluginRequest> = fc.record({
  host: hostArb,
  port: fc.integer({ min: 1, max: 65535 }),
  deadlineMs: fc.integer({ min: 1, max: MAX_DEADLINE_MS }),
  family: fc.constantFrom(0 as const, 4 as const, 6 as const),
});

describe('plugin protocol', () => {
  test('every request the plugin can send parses back to itself', () => {
    check(requestArb, (r) => {
      const line = formatRequest(r);
      assert.ok(line.endsWith('\n') && !line.slice(0, -1).includes('\n'));
      assert.deepEqual(parseRequest(line.slice(0, -1)), { ...r });
    });
  });

  test('any line is a request or one line naming what is wrong, and what parses is canonical', () => {
    const lineArb = fc.oneof(
      fc.string({ maxLength: 600 }),
      fc.array(fc.oneof(fc.constant('check'), hostArb, fc.integer({ min: -5, max: 70000 }).map(String), fc.string({ maxLength: 8 })), { maxLength: 7 }).map((w) => w.join(' ')),
    );
    check(lineArb, (line) => {
      const r = parseRequest(line);
      if (typeof r === 'string') {
        assert.ok(r.length > 0 && !r.includes('\n'), `error for ${JSON.stringify(line)}: ${JSON.stringify(r)}`);
      } else {
        assert.equal(formatRequest(r).slice(0, -1), line.replace(/\r$/, ''));
        assert.ok(r.port >= 1 && r.port <= 65535 && r.deadlineMs >= 1 && !/[\s]/.test(r.host));
      }
    }, 2000);
  });

  test('malformed requests name the bad field', () => {
    assert.match(parseRequest('check 198.18.0.1 0 1000 0') as string, /^PORT/);
    assert.match(parseRequest('check 198.18.0.1 080 1000 0') as string, /^PORT/);
    assert.match(parseRequest('check 198.18.0.1 80 0 0') as string, /^DEADLINE_MS/);
    assert.match(parseRequest('check 198.18.0.1 80 1000 5') as string, /^FAMILY/);
    assert.match(parseRequest('check a;b 80 1000 0') as string, /^HOST/);
    assert.match(parseRequest('check  80 1000 0') as string, /^HOST/);
    assert.match(parseRequest('probe 198.18.0.1 80') as string, /^unknown request "probe"/);
    assert.match(parseRequest('check 198.18.0.1 80 1000') as string, /expected "check HOST PORT DEADLINE_MS FAMILY"/);
  });

  test('verdict fields survive the line; what cannot go in a field becomes "-"', () => {
    const fieldArb = fc.string({ unit: hostChar, minLength: 1, maxLength: 40 });
    check(fc.record({
      state: fc.constantFrom('open' as const, 'closed' as const, 'filtered' as const, 'maint' as const, 'pending' as const),
      reason: fieldArb, ip: fieldArb,
      rttUs: fc.integer({ min: -1, max: 10 ** 11 }), ttl: fc.integer({ min: -1, max: 255 }),
    }), (v) => {
      assert.deepEqual(parseAnswer(formatVerdict(v).slice(0, -1)), { kind: "verdict", ...v });
    });
    assert.equal(formatVerdict({ state: 'open', reason: 'a b', ip: '', rttUs: 1.5, ttl: NaN }), 'verdict open - - -1 -1\n');
  });

  test('free text is always one line', () => {
    check(fc.string({ maxLength: 200 }), (s) => {
      for (const line of [formatLive(s), formatRefused(s)]) {
        assert.equal(line.indexOf('\n'), line.length - 1);
        const a = parseAnswer(line.slice(0, -1));
        assert.ok(a && (a.kind === 'live' || a.kind === 'refused') && a.text.length > 0);
      }
    });
    assert.deepEqual(parseAnswer(formatWait(12.2).slice(0, -1)), { kind: 'wait', ms: 13 });
    for (const bad of ['', 'verdict', 'verdict up syn-ack 1.2.3.4 1 1', 'verdict open syn-ack 1.2.3.4 01 1', 'wait 0', 'live', 'hello'])
      assert.equal(parseAnswer(bad), null, bad);
  });
});

describe('plugin config', () => {
  const cfg = (extra: string, backends = 'backends:\n  - { host: 198.18.0.1, port: 80 }\n') => parseConfig(`${extra}\n${backends}`, 'serve.yaml');

  test('defaults: no socket, no learning; learned backends take the defaults timings and start down', () => {
    const c = cfg('defaults: { interval: 3s, timeout: 500ms, rise: 4 }');
    assert.equal(c.plugin.socket, undefined);
    assert.equal(c.plugin.learn, false);
    assert.equal(c.plugin.maxLearned, 1024);
    assert.equal(c.plugin.forgetAfter, 600_000);
    assert.deepEqual({ i: c.plugin.timings.interval, t: c.plugin.timings.timeout, r: c.plugin.timings.rise, init: c.plugin.timings.initial },
      { i: 3000, t: 500, r: 4, init: 'down' });
  });

  test('learning may start from no backends at all', () => {
    const c = cfg('listen: { plugin: /run/halfopen/plugin.sock }\nplugin: { learn: true, allow: [198.18.0.0/15, "2001:2::/48"], max_learned: 10, forget_after: 2m }', '');
    assert.deepEqual(c.backends, []);
    assert.deepEqual({ s: c.plugin.socket, m: c.plugin.maxLearned, f: c.plugin.forgetAfter, a: c.plugin.allow },
      { s: '/run/halfopen/plugin.sock', m: 10, f: 120_000, a: ['198.18.0.0/15', '2001:2::/48'] });
    assert.throws(() => cfg('listen: { plugin: /run/p.sock }', ''), /backends: expected a non-empty list/);
  });

  test('bad values are one line naming the field', () => {
    const bad: Array<[string, RegExp]> = [
      ['listen: { plugin: run/p.sock }', /listen\.plugin: expected an absolute unix socket path/],
      ['listen: { plugin: /run/HOST.sock }', /listen\.plugin: .*without spaces or the words HOST and PORT/],
      ['listen: { plugin: /run/PORT/p.sock }', /listen\.plugin: /],
      [`listen: { plugin: /${'x'.repeat(120)} }`, /listen\.plugin: .*at most 107 bytes/],
      ['listen: { plugin: /p.sock }\nplugin: { learn: true }', /plugin\.allow: expected the addresses/],
      ['plugin: { learn: true, allow: [198.18.0.0/24] }', /listen\.plugin: expected a socket path when plugin\.learn is true/],
      ['listen: { plugin: /p.sock }\nplugin: { learn: yes }', /plugin\.learn: expected true or false/],
      ['listen: { plugin: /p.sock }\nplugin: { allow: [not an address!] }', /plugin\.allow: expected a list of addresses/],
      ['listen: { plugin: /p.sock }\nplugin: { max_learned: 0 }', /plugin\.max_learned: expected a whole number from 1 to 100000/],
      ['listen: { plugin: /p.sock }\nplugin: { forget_after: soon }', /plugin\.forget_after: expected a duration/],
      ['listen: { plugin: /p.sock }\nplugin: { learns: true }', /plugin\.learns: expected one of the fields learn, allow, max_learned, forget_after/],
    ];
    for (const [text, re] of bad) {
      assert.throws(() => cfg(text), (e: Error) => { assert.match(e.message, re, text); assert.ok(!e.message.includes('\n')); return true; });
    }
  });
});

/** A probe table whose replies a test scripts per address: open, closed or silent. */
class ScriptedTable implements ProbeSlots {
  readonly capacity = 64;
  private readonly target = new Map<number, bigint>();
  private readonly state = new Map<number, number>();
  private polled: number[] = [];
  readonly reply = new Map<bigint, 'open' | 'closed' | 'silent'>();
  setSlot(i: number, addr: bigint): void { this.target.set(i, addr); }
  counters(): Record<string, number> { return {}; }
  clearSlot(i: number): void { this.state.delete(i); this.target.delete(i); }
  rearmSlot(i: number): void { this.state.delete(i); }
  answered(i: number): boolean { return (this.state.get(i) ?? HO_RESULT_PENDING) !== HO_RESULT_PENDING; }
  verdict(i: number): Verdict | null {
    const s = this.state.get(i);
    return s ? { state: s, rttMs: 0.25, ttl: 63, icmpType: 0, icmpCode: 0, replies: 1 } : null;
  }
  pollSlots(): Uint32Array { const out = Uint32Array.from(this.polled); this.polled = []; return out; }
  sendSlots(slots: Uint32Array): Promise<unknown> {
    for (const slot of slots) {
      const r = this.reply.get(this.target.get(slot)!) ?? 'open';
      if (r !== 'silent') { this.state.set(slot, r === 'open' ? HO_PROBE_STATE_OPEN : HO_PROBE_STATE_CLOSED); this.polled.push(slot); }
    }
    return Promise.resolve({ ok: true });
  }
  get used(): number { return this.target.size; }
}

const A1 = 0xffffc6120001n, A2 = 0xffffc6120002n, A9 = 0xffffc6120009n;

function rig(learn = true, maxLearned = 2) {
  const c = parseConfig(`defaults: { interval: 1s, timeout: 500ms, rise: 2, fall: 2, jitter: 0 }
listen: { plugin: /run/halfopen-test.sock }
plugin: { learn: ${learn}, allow: [198.18.0.0/24], max_learned: ${maxLearned}, forget_after: 5s }
backends:
  - { name: web1, host: 198.18.0.1, port: 80 }
  - { name: web2, host: 198.18.0.2, port: 80 }
`);
  const table = new ScriptedTable();
  const monitor = new Monitor(table, 61000, 61999);
  monitor.apply(c.backends.map((cfg) => ({ cfg, addr: cfg.host === '198.18.0.1' ? A1 : A2 })), 0);
  for (const b of monitor.list()) { b.nextAt = 0; (monitor as unknown as { wake(b: unknown): void }).wake(b); }
  const plugin = new PluginSocket(c.plugin, () => monitor, () => {});
  const ask = (host: string, port = 80, now = 0) => plugin.answer({ host, port, deadlineMs: 1000, family: 0 }, () => {}, now);
  /** Ticks from `from` to `to` every 10 ms, letting sends complete. */
  const run = async (from: number, to: number) => { for (let t = from; t <= to; t += 10) { monitor.tick(t); await new Promise((r) => setImmediate(r)); } };
  return { c, table, monitor, plugin, ask, run };
}

describe('plugin answers from serve state', () => {
  test('up with rise/fall applied: one failed check within fall still prints the latest answered one', async () => {
    const { table, ask, run } = rig(false);
    assert.match(ask('198.18.0.1') as string, /^live backend web1 has not been checked yet/);
    await run(0, 50);
    assert.equal(ask('198.18.0.1', 80, 60), 'verdict open syn-ack 198.18.0.1 250 63\n');
    table.reply.set(A1, 'closed');
    await run(1000, 1050); // one RST: fall is 2, still up
    assert.equal(ask('198.18.0.1', 80, 1060), 'verdict open syn-ack 198.18.0.1 250 63\n');
    await run(1060, 2100); // the second one takes it down: now the RST is what prints
    assert.equal(ask('198.18.0.1', 80, 2110), 'verdict closed rst 198.18.0.1 250 63\n');
    assert.equal(ask('web1.example', 80), 'live halfopen serve does not check web1.example port 80\n');
  });

  test('never from a stale check: the plugin is sent to check live', async () => {
    const { ask, run } = rig(false);
    await run(0, 50);
    assert.match(ask('198.18.0.2', 80, 60) as string, /^verdict open/);
    assert.match(ask('198.18.0.2', 80, 60_000) as string, /^live no fresh check of backend web2: the latest completed \d+ ms ago\n$/);
  });

  test('learning: the first check alone decides; refused outside allow and beyond max_learned; forgotten unasked', async () => {
    const { table, monitor, plugin, ask, run } = rig(true, 2);
    await run(0, 50);
    const used = table.used;
    table.reply.set(A9, 'silent');
    const open = ask('198.18.0.7', 80, 100);
    const silent = ask('198.18.0.9', 80, 100);
    assert.ok(open instanceof Promise && silent instanceof Promise);
    assert.equal(monitor.get('198.18.0.7:80')?.state, 'down', 'down until measured');
    await run(100, 700);
    assert.equal(await open, 'verdict open syn-ack 198.18.0.7 250 63\n');
    assert.equal(monitor.get('198.18.0.7:80')?.healthState, 'up', 'one open check: up, although rise is 2');
    // The silent one's first check times out after 500 ms: filtered.
    assert.equal(await silent, 'verdict filtered no-response 198.18.0.9 -1 -1\n');
    assert.equal(ask('198.18.0.9', 80, 710), 'verdict filtered no-response 198.18.0.9 -1 -1\n');
    assert.equal(await ask('198.18.1.1'), 'refused not learning 198.18.1.1 port 80: 198.18.1.1 is not inside plugin.allow\n');
    assert.equal(await ask('198.18.0.8', 80, 700), 'refused not learning 198.18.0.8 port 80: plugin.max_learned (2) backends are learned already\n');
    assert.equal(plugin.learnedCount, 2);
    assert.equal(table.used, used + 2);
    // Reload: the learned backends stay, unless the config now names them.
    const list = plugin.withLearned([{ cfg: monitor.get('web1')!.cfg, addr: A1 }, { cfg: { ...monitor.get('web2')!.cfg, host: '198.18.0.7', name: 'seven' }, addr: 0xffffc6120007n }]);
    assert.deepEqual(list.map((x) => x.cfg.name), ['web1', 'seven', '198.18.0.9:80']);
    monitor.apply(list, 800);
    assert.equal(plugin.learnedCount, 1);
    assert.equal(monitor.get('198.18.0.9:80')?.checks, 1, 'a reload keeps the learned backend as it is');
    // Asked about at 710; forget_after 5 s later it goes, slots and all.
    (plugin as unknown as { forgetIdle(now: number): void }).forgetIdle(5000);
    assert.ok(monitor.get('198.18.0.9:80'));
    (plugin as unknown as { forgetIdle(now: number): void }).forgetIdle(5711);
    assert.equal(monitor.get('198.18.0.9:80'), undefined);
    assert.equal(plugin.learnedCount, 0);
  });

  test('maintenance and a family the backend is not checked over', async () => {
    const { monitor, ask, plugin, run } = rig(false);
    await run(0, 50);
    monitor.setAdmin('web1', 'maint', 60);
    assert.equal(ask('198.18.0.1', 80, 70), 'verdict maint maint 198.18.0.1 -1 -1\n');
    assert.match(plugin.answer({ host: '198.18.0.2', port: 80, deadlineMs: 100, family: 6 }, () => {}, 70) as string, /^live backend web2 is checked over IPv4, not -6/);
  });
});
