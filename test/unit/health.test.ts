import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Health } from '../../src/daemon/health';
import { parseConfig } from '../../src/daemon/config';
import { HalfopenError } from '../../src/errors';
import { tickFor } from '../../src/daemon/monitor';

describe('Health (HAProxy rise/fall)', () => {
  test('from up: down after exactly `fall` consecutive failures', () => {
    const h = new Health(2, 3);
    assert.equal(h.state, 'up');
    assert.equal(h.record(false), null);
    assert.equal(h.record(false), null);
    assert.deepEqual(h.record(false), { from: 'up', to: 'down', consecutive: 3 });
    assert.equal(h.state, 'down');
  });

  test('from down: up after exactly `rise` consecutive successes', () => {
    const h = new Health(3, 2, 'down');
    assert.equal(h.record(true), null);
    assert.equal(h.record(true), null);
    assert.deepEqual(h.record(true), { from: 'down', to: 'up', consecutive: 3 });
  });

  test('a success in between resets the way down', () => {
    const h = new Health(2, 3);
    h.record(false); h.record(false); h.record(true);
    assert.equal(h.record(false), null);
    assert.equal(h.record(false), null);
    assert.equal(h.record(false)?.to, 'down');
  });

  test('a failure while coming up starts over', () => {
    const h = new Health(2, 2, 'down');
    h.record(true); h.record(false);
    assert.equal(h.record(true), null);
    assert.equal(h.record(true)?.to, 'up');
  });

  test('rise = fall = 1 flips on every different result', () => {
    const h = new Health(1, 1);
    assert.equal(h.record(false)?.to, 'down');
    assert.equal(h.record(true)?.to, 'up');
  });

  test('intervals: inter when stable, fastinter while moving, downinter while down', () => {
    const t = { interval: 2000, fastinter: 500, downinter: 5000 };
    const h = new Health(2, 3);
    assert.equal(h.nextInterval(t), 2000);
    h.record(false);
    assert.equal(h.nextInterval(t), 500);
    h.record(false); h.record(false);
    assert.equal(h.nextInterval(t), 5000);
    h.record(true);
    assert.equal(h.nextInterval(t), 500);
  });

  test('no flap at start: the initial state holds until fall/rise results say otherwise', () => {
    const up = new Health(2, 3, 'up');
    assert.equal(up.record(false), null);
    const down = new Health(2, 3, 'down');
    assert.equal(down.record(true), null);
  });
});

describe('serve config', () => {
  const ok = `
defaults: { interval: 2s, timeout: 500ms, rise: 2, fall: 3, fastinter: 500ms, jitter: 10% }
listen: { http: "127.0.0.1:9100", agent: 5555 }
events: /tmp/e.ndjson
hooks: { on_change: "logger $HALFOPEN_BACKEND", timeout: 5s }
backends:
  - { name: web1, host: 198.18.0.1, port: 80, weight: 50, labels: { pool: web } }
  - { host: "2001:2::6", port: 443, interval: 1s, timeout: 1s }
`;
  test('parses defaults, per-backend overrides and listeners', () => {
    const c = parseConfig(ok, 'x.yaml');
    assert.equal(c.backends.length, 2);
    assert.deepEqual({ ...c.backends[0] }, { name: 'web1', host: '198.18.0.1', port: 80, weight: 50, labels: { pool: 'web' }, interval: 2000, timeout: 500, rise: 2, fall: 3, jitter: 0.1, initial: 'up', fastinter: 500, downinter: 2000, slowstart: 0, logFailures: false, resolveInterval: 30_000 });
    assert.equal(c.backends[1].name, '2001:2::6:443');
    assert.equal(c.backends[1].interval, 1000);
    assert.deepEqual(c.listen, { http: { host: '127.0.0.1', port: 9100 }, agent: { host: '127.0.0.1', port: 5555 } });
    assert.equal(c.hooks.timeout, 5000);
    assert.deepEqual({ xdpMode: c.probe.xdpMode, rst: c.probe.rst }, { xdpMode: 'auto', rst: 'auto' });
  });

  test('probe: XDP mode and who sends the RST', () => {
    const c = parseConfig('probe: { xdp_mode: native, rst: xdp, senders: 2 }\nbackends: [{ host: 198.18.0.1, port: 80 }]', 'x.yaml');
    assert.deepEqual({ xdpMode: c.probe.xdpMode, rst: c.probe.rst, senders: c.probe.senders }, { xdpMode: 'native', rst: 'xdp', senders: 2 });
  });

  test('slow start, failure logging, resolve interval, state file and admin token', () => {
    const c = parseConfig('defaults: { slowstart: 30s, resolve_interval: 10s }\nstate_file: /var/lib/halfopen/state.json\nadmin: { token_file: /etc/halfopen/token }\nbackends:\n  - { host: 198.18.0.1, port: 80, log_failures: true }\n  - { host: 198.18.0.2, port: 80, slowstart: 0 }', 'x.yaml');
    assert.deepEqual(c.backends.map((b) => [b.slowstart, b.logFailures, b.resolveInterval]), [[30_000, true, 10_000], [0, false, 10_000]]);
    assert.equal(c.stateFile, '/var/lib/halfopen/state.json');
    assert.equal(c.admin.tokenFile, '/etc/halfopen/token');
  });

  const bad: Array<[string, string, RegExp]> = [
    ['bad log_failures', 'backends: [{ host: 198.18.0.1, port: 80, log_failures: yes }]', /backends\[0\]\.log_failures: expected true or false, got "yes"/],
    ['bad admin', 'admin: { token: x }\nbackends: [{ host: 198.18.0.1, port: 80 }]', /admin\.token: expected one of the fields token_file/],
    ['jitter over half', 'defaults: { jitter: 60% }\nbackends: [{ host: 198.18.0.1, port: 80 }]', /defaults\.jitter: expected a fraction from 0 to 0\.5/],
    ['duplicate host:port', 'backends: [{ name: a, host: 198.18.0.1, port: 80 }, { name: b, host: 198.18.0.1, port: 80 }]', /backends\[1\]: expected a host:port not already checked by backend "a"/],
    ['no backends', 'backends: []', /x\.yaml: backends: expected a non-empty list/],
    ['bad port', 'backends: [{ host: 198.18.0.1, port: 0 }]', /x\.yaml: backends\[0\]\.port: expected a whole number from 1 to 65535, got 0/],
    ['bad duration', 'backends: [{ host: 198.18.0.1, port: 80, interval: soon }]', /backends\[0\]\.interval: expected a duration like 2s/],
    ['unknown field', 'backends: [{ host: 198.18.0.1, port: 80, intreval: 1s }]', /backends\[0\]\.intreval: expected one of the fields/],
    ['duplicate name', 'backends: [{ name: a, host: 198.18.0.1, port: 80 }, { name: a, host: 198.18.0.2, port: 80 }]', /backends\[1\]\.name: expected a name not used/],
    ['timeout above interval', 'backends: [{ host: 198.18.0.1, port: 80, interval: 1s, timeout: 2s }]', /backends\[0\]\.timeout: expected at most the interval/],
    ['bad listen', 'listen: { http: "nowhere:x" }\nbackends: [{ host: 198.18.0.1, port: 80 }]', /listen\.http: expected a listen address/],
    ['bad rise', 'defaults: { rise: 0 }\nbackends: [{ host: 198.18.0.1, port: 80 }]', /defaults\.rise: expected a whole number from 1/],
    ['not yaml', 'backends: [', /x\.yaml: not valid YAML/],
    ['bad rst', 'probe: { rst: stack }\nbackends: [{ host: 198.18.0.1, port: 80 }]', /probe\.rst: expected "auto", "xdp" or "kernel", got "stack"/],
    ['bad xdp_mode', 'probe: { xdp_mode: skb }\nbackends: [{ host: 198.18.0.1, port: 80 }]', /probe\.xdp_mode: expected "auto", "native" or "generic", got "skb"/],
  ];
  for (const [name, text, re] of bad) {
    test(`rejects: ${name}`, () => {
      assert.throws(() => parseConfig(text, 'x.yaml'), (e: unknown) => e instanceof HalfopenError && e.code === 'E_CONFIG' && re.test(e.message));
    });
  }
});

describe('monitor tick', () => {
  const b = (interval: number, timeout: number) => ({ interval, timeout }) as Parameters<typeof tickFor>[0] extends Iterable<infer T> ? T : never;
  test('a tenth of the shortest interval or a fifth of the shortest timeout, within 10-50 ms', () => {
    assert.equal(tickFor([b(1000, 500)]), 50);
    assert.equal(tickFor([b(1000, 500), b(400, 200)]), 40);
    assert.equal(tickFor([b(2000, 100)]), 20);
    assert.equal(tickFor([b(100, 50)]), 10);
    assert.equal(tickFor([b(60_000, 5000)]), 50);
  });
});
