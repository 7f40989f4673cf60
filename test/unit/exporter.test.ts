// serve's /probe (src/daemon/exporter/) without privileges: target, module and
// deadline parsing (examples and fast-check properties), the exporter config,
// the limits, the allow list as /probe uses it (v4, v6, names, mapped
// addresses), the exposition (accepted by `promtool check metrics`), /sd, and
// the on-demand slots of the monitor (Monitor.probeOnce) over a scripted
// probe table.
//
// A property failure prints fast-check's seed and path; rerun one with
// HALFOPEN_FC_SEED=<seed> HALFOPEN_FC_PATH=<path>.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import fc from 'fast-check';
import { parseTarget, probeTimeoutSeconds, parseProbeRequest } from '../../src/daemon/exporter/request';
import { DEFAULT_MODULE, ExporterConfig } from '../../src/daemon/exporter/config';
import { Limiter } from '../../src/daemon/exporter/limiter';
import { refusalLog } from '../../src/daemon/rate-limited-log';
import { renderProbe, fnv1a32, debugOutput } from '../../src/daemon/exporter/exposition';
import { Exporter, chooseAddress, systemLookup } from '../../src/daemon/exporter/exporter';
import { sdAddress, sdChunks } from '../../src/daemon/exporter/sd';
import { parseConfig } from '../../src/daemon/config';
import { Monitor, ProbeSlots, slotsFor } from '../../src/daemon/monitor';
import { renderMetrics } from '../../src/daemon/metrics';
import { formatAddress, parseAddress, v4FromNumber } from '../../src/targets/address';
import { HO_PROBE_STATE_CLOSED, HO_RESULT_PENDING, HO_PROBE_STATE_OPEN } from '../../src/contract.generated';
import type { Verdict } from '../../src/engine/probe-table';
import type { ProbeOnce, ProbeOptions } from '../../src/daemon/on-demand';

const fcParams = (): fc.Parameters<unknown> => {
  const seed = process.env.HALFOPEN_FC_SEED, path = process.env.HALFOPEN_FC_PATH;
  return { numRuns: 300, ...(seed ? { seed: Number(seed) } : {}), ...(path ? { path } : {}) };
};
const addr = (s: string) => parseAddress(s)!;
const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
const noPromtool = promtool.error ? 'promtool is not installed (apt-get install prometheus; scripts/setup.sh does)' : false;

function promtoolCheck(text: string): string {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return r.status === 0 ? '' : `${r.stdout}${r.stderr}`;
}

const cfgOf = (yamlText: string): ExporterConfig => parseConfig(`listen: { http: 9100 }\n${yamlText}\n`, 'serve.yaml').exporter!;

describe('exporter: targets', () => {
  test('host:port, [v6]:port, a host with the module\'s port', () => {
    assert.deepEqual(parseTarget('198.18.0.1:80'), { ok: true, value: { host: '198.18.0.1', addr: addr('198.18.0.1'), port: 80 } });
    assert.deepEqual(parseTarget('[2001:2::1]:443'), { ok: true, value: { host: '2001:2::1', addr: addr('2001:2::1'), port: 443 } });
    assert.deepEqual(parseTarget('DB.Internal.:3306'), { ok: true, value: { host: 'db.internal', addr: null, port: 3306 } });
    assert.deepEqual(parseTarget('db.internal', 5432), { ok: true, value: { host: 'db.internal', addr: null, port: 5432 } });
    assert.deepEqual(parseTarget('2001:2::1', 80), { ok: true, value: { host: '2001:2::1', addr: addr('2001:2::1'), port: 80 } });
    assert.deepEqual(parseTarget('[2001:2::1]', 80), { ok: true, value: { host: '2001:2::1', addr: addr('2001:2::1'), port: 80 } });
    // An IPv4-mapped IPv6 spelling is the IPv4 address, as everywhere in halfopen.
    const m = parseTarget('[::ffff:198.18.0.9]:80');
    assert.ok(m.ok && m.value.addr === addr('198.18.0.9'));
    assert.ok(m.ok && formatAddress(m.value.addr!) === '198.18.0.9');
  });

  test('malformed targets are one line naming the target', () => {
    for (const bad of ['', ' ', '198.18.0.1', 'db.internal', '198.18.0.1:0', '198.18.0.1:65536', '198.18.0.1:http', '198.18.0.1:-1', '[2001:2::1]:x',
      '[nothost]:80', '[2001:2::1', 'http://198.18.0.1:80', '198.18.0.0/24:80', 'bad name:80', '1.2.3:80', '2001:2::zz', 'a:b:c', ':80', '198.18.0.1:80:1']) {
      const r = parseTarget(bad);
      assert.equal(r.ok, false, bad);
      if (!r.ok) assert.match(r.error, /^target ".*": /, bad);
    }
  });

  test('property: every address and port, written as Prometheus writes __address__, parses back', () => {
    fc.assert(fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 1, max: 65535 }), (ip, port) => {
      const a = parseAddress(ip)!;
      const text = ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
      const r = parseTarget(text);
      return r.ok && r.value.addr === a && r.value.port === port;
    }), fcParams());
  });

  test('property: any string parses or is refused with one line; never throws, never a port outside 1..65535', () => {
    fc.assert(fc.property(fc.string({ maxLength: 60 }), fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }), (s, dp) => {
      const r = parseTarget(s, dp);
      if (!r.ok) return !r.error.includes('\n');
      return r.value.port >= 1 && r.value.port <= 65535 && (r.value.addr !== null || /^[a-z0-9.-]+$/.test(r.value.host));
    }), fcParams());
  });
});

describe('exporter: deadline', () => {
  test('blackbox arithmetic: the module timeout, capped by the scrape timeout minus the offset', () => {
    const t = (h: string | undefined, m: number, o = 0.5) => { const r = probeTimeoutSeconds(h, m, o); assert.ok(r.ok); return r.value; };
    assert.equal(t(undefined, 5), 5); // no header: 120 s - offset, the module's 5 s is shorter
    assert.equal(t('10', 5), 5);
    assert.equal(t('3', 5), 2.5);
    assert.equal(t('5.5', 5), 5);
    assert.equal(t('2.5', 5, 0), 2.5);
    assert.equal(t('0.25', 5), 5); // header minus offset negative: blackbox falls back to the module
    assert.equal(t('0', 5), 5); // 0 means no header (120 s)
    assert.equal(t('200', 0), 199.5); // no module limit: the scrape's
    assert.equal(t('1e1', 20), 9.5);
    for (const bad of ['abc', '1s', '', ' ', 'NaN', '--1']) {
      const r = probeTimeoutSeconds(bad, 5, 0.5);
      if (bad.trim() === '') assert.equal(r.ok, bad === '' ? true : false, JSON.stringify(bad));
      else assert.equal(r.ok, false, bad);
    }
  });

  test('property: never longer than the module\'s timeout, nor than the scrape timeout minus the offset when that is positive', () => {
    fc.assert(fc.property(fc.double({ min: 0.001, max: 600, noNaN: true }), fc.double({ min: 0.001, max: 300, noNaN: true }), fc.double({ min: 0, max: 2, noNaN: true }),
      (scrape, mod, off) => {
        const r = probeTimeoutSeconds(String(scrape), mod, off);
        if (!r.ok) return false;
        if (r.value > mod + 1e-9) return false;
        return scrape - off < 0 || r.value <= scrape - off + 1e-9;
      }), fcParams());
  });
});

describe('exporter: requests and config', () => {
  const cfg = cfgOf(`exporter:
  allow: [198.18.0.0/15]
  modules: { db: { timeout: 2s, port: 3306, preferred_ip_protocol: ip4 } }`);

  test('the default module, an unknown one, a missing target, a bad header: as blackbox answers', () => {
    const q = (s: string, h?: string) => parseProbeRequest(new URLSearchParams(s), h, cfg);
    const ok = q('target=198.18.0.1:80');
    assert.ok(ok.ok && ok.value.moduleName === DEFAULT_MODULE && ok.value.timeoutS === 5 && !ok.value.debug);
    const db = q('target=db.internal&module=db&debug=true', '10');
    assert.ok(db.ok && db.value.target.port === 3306 && db.value.timeoutS === 2 && db.value.debug);
    assert.deepEqual(q('target=198.18.0.1:80&module=nope'), { ok: false, error: 'Unknown module "nope"' });
    assert.deepEqual(q('module=db'), { ok: false, error: 'Target parameter is missing' });
    assert.deepEqual(q('target='), { ok: false, error: 'Target parameter is missing' });
    assert.equal(q('target=198.18.0.1:80', 'soon').ok, false);
    assert.equal(q('target=198.18.0.1:80&module=__proto__').ok, false);
    assert.equal(q('target=198.18.0.1:80&module=toString').ok, false);
  });

  test('config: defaults, modules, limits; an exporter-only config needs no backends', () => {
    const c = parseConfig('listen: { http: 9100 }\nexporter:\n  allow: [198.18.0.0/15, "2001:2::/48", db.internal]\n', 'x.yaml');
    assert.throws(() => parseConfig('exporter: { allow: [198.18.0.0/15] }\n', 'x.yaml'), /x\.yaml: listen\.http: expected an HTTP listen address/);
    assert.deepEqual(c.backends, []);
    assert.equal(c.exporter!.maxConcurrent, 100);
    assert.equal(c.exporter!.maxPerSecond, 200);
    assert.equal(c.exporter!.timeoutOffsetMs, 500);
    assert.deepEqual(c.exporter!.modules.tcp_half_open, { prober: 'tcp_half_open', timeoutMs: 5000, preferredIpProtocol: 'ip6', ipProtocolFallback: true });
    const m = cfgOf(`exporter:
  allow: [198.18.0.0/15]
  max_concurrent: 7
  max_per_second: 9
  timeout_offset: 250ms
  modules:
    tcp_half_open: { timeout: 5s, preferred_ip_protocol: ip6, ip_protocol_fallback: true, source: 10.0.1.5, mark: 0x10 }
    v4only: { prober: tcp_half_open, preferred_ip_protocol: ip4, ip_protocol_fallback: false, source: [198.19.255.1, "2001:2:0:ffff::1"], port: 80 }`);
    assert.deepEqual(m.modules.tcp_half_open, { prober: 'tcp_half_open', timeoutMs: 5000, preferredIpProtocol: 'ip6', ipProtocolFallback: true, source: ['10.0.1.5'], mark: 16 });
    assert.deepEqual(m.modules.v4only.source, ['198.19.255.1', '2001:2:0:ffff::1']);
    assert.equal(m.maxConcurrent, 7);
    assert.equal(m.timeoutOffsetMs, 250);
    assert.throws(() => parseConfig('listen: { http: 9100 }\n', 'x.yaml'), /backends: expected a non-empty list of backends \(or an exporter section\)/);
  });

  test('config errors are one E_CONFIG line naming the file and the field', () => {
    const bad: Array<[string, RegExp]> = [
      ['exporter: {}', /x\.yaml: exporter\.allow: expected a list/],
      ['exporter: { allow: [] }', /exporter\.allow: expected at least one entry/],
      ['exporter: { allow: [10.0.0.999] }', /x\.yaml: exporter\.allow: entry "10\.0\.0\.999"/],
      ['exporter: { allow: [198.18.0.0/15], max_concurrent: 0 }', /exporter\.max_concurrent: expected a whole number from 1/],
      ['exporter: { allow: [198.18.0.0/15], rate: 5 }', /exporter\.rate: expected one of the fields/],
      ['exporter: { allow: [198.18.0.0/15], modules: { m: { timeout: soon } } }', /exporter\.modules\.m\.timeout: expected a duration/],
      ['exporter: { allow: [198.18.0.0/15], modules: { m: { prober: http } } }', /exporter\.modules\.m\.prober: expected "tcp_half_open"/],
      ['exporter: { allow: [198.18.0.0/15], modules: { m: { preferred_ip_protocol: ipv4 } } }', /preferred_ip_protocol: expected "ip4" or "ip6"/],
      ['exporter: { allow: [198.18.0.0/15], modules: { m: { source: [1.1.1.1, 2.2.2.2] } } }', /modules\.m\.source: expected at most one address per family/],
      ['exporter: { allow: [198.18.0.0/15], modules: { m: { mark: 0x1ffffffff } } }', /modules\.m\.mark: expected a mark/],
      ['exporter: { allow: [198.18.0.0/15], modules: { m: { port: 0 } } }', /modules\.m\.port: expected a whole number from 1 to 65535/],
      ['exporter: { allow: [198.18.0.0/15], modules: { m: { tls: true } } }', /modules\.m\.tls: expected one of the fields/],
    ];
    for (const [text, re] of bad) {
      assert.throws(() => parseConfig(`listen: { http: 9100 }\n${text}\n`, 'x.yaml'), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'E_CONFIG', text);
        assert.match(e.message, re, text);
        assert.ok(!e.message.includes('\n'), text);
        return true;
      }, text);
    }
  });

  test('the example config\'s commented exporter section, uncommented, is valid', () => {
    const text = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'deploy', 'etc', 'serve.yaml'), 'utf8');
    const lines = text.split('\n');
    const at = lines.findIndex((l) => l.startsWith('# exporter:'));
    assert.ok(at > 0);
    let end = at + 1;
    while (lines[end].startsWith('#   ')) end++;
    const section = lines.slice(at, end).map((l) => l.slice(2)).join('\n');
    const e = parseConfig(`listen: { http: 9100 }\n${section}\n`, 'serve.yaml').exporter!;
    assert.deepEqual(Object.keys(e.modules).sort(), ['mysql', 'tcp_half_open']);
  });

  test('a module source that is not an address of this host is one E_CONFIG line', () => {
    assert.doesNotThrow(() => Exporter.checkSources(cfgOf('exporter: { allow: [198.18.0.0/15], modules: { m: { source: 127.0.0.1 } } }')));
    assert.throws(() => Exporter.checkSources(cfgOf('exporter: { allow: [198.18.0.0/15], modules: { m: { source: 192.0.2.77 } } }')),
      /^HalfopenError: exporter\.modules\.m\.source: 192\.0\.2\.77 is not an address of this host/);
  });

  test('the system resolver: a few lookups at a time, and none for a probe whose deadline has passed', async () => {
    const all = await Promise.all(Array.from({ length: 10 }, () => systemLookup('localhost', 0)));
    assert.ok(all.every((a) => a.some((x) => x === '127.0.0.1' || x === '::1')), JSON.stringify(all[0]));
    await assert.rejects(systemLookup('localhost', 0, Date.now() - 1), (e: Error & { code?: string }) => e.code === 'ETIMEOUT');
    assert.ok((await systemLookup('localhost', 4)).includes('127.0.0.1'), 'the turns were all handed back');
  });

  test('chooseAddress: the preferred family, else the other with fallback (blackbox\'s chooseProtocol)', () => {
    const m6 = cfg.modules.tcp_half_open, m4 = cfg.modules.db;
    const both = [addr('198.18.0.1'), addr('2001:2::1')];
    assert.equal(chooseAddress(both, m6), addr('2001:2::1'));
    assert.equal(chooseAddress(both, m4), addr('198.18.0.1'));
    assert.equal(chooseAddress([addr('198.18.0.1')], m6), addr('198.18.0.1'));
    assert.equal(chooseAddress([addr('198.18.0.1')], { ...m6, ipProtocolFallback: false }), null);
    assert.equal(chooseAddress([], m6), null);
  });
});

describe('exporter: limits', () => {
  test('max_concurrent refuses with 503 at once, max_per_second with 429, nothing queues', () => {
    const l = new Limiter(2, 3, 0);
    assert.ok(l.admit(0).ok);
    assert.ok(l.admit(0).ok);
    const busy = l.admit(0);
    assert.ok(!busy.ok && busy.status === 503);
    l.release();
    assert.ok(l.admit(0).ok);
    l.release(); l.release();
    const rate = l.admit(0);
    assert.ok(!rate.ok && rate.status === 429 && rate.retryAfterS >= 1, JSON.stringify(rate));
    assert.ok(l.admit(400).ok, 'a third of a second later, one more token');
    l.release();
  });

  test('property: over any window of one second, at most max_per_second plus the one-second burst are admitted', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 50 }), fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 300 }), (rate, gaps) => {
      const l = new Limiter(1_000_000, rate, 0);
      const admitted: number[] = [];
      let t = 0;
      for (const g of gaps) {
        t += g;
        if (l.admit(t).ok) { admitted.push(t); l.release(); }
      }
      for (let i = 0; i < admitted.length; i++) {
        let n = 0;
        for (let j = i; j < admitted.length && admitted[j] < admitted[i] + 1000; j++) n++;
        if (n > 2 * rate) return false;
      }
      return true;
    }), fcParams());
  });

  test('refusals are logged at most once every 10 s, with the count of those not shown', () => {
    const lines: string[] = [];
    const r = refusalLog((m) => lines.push(m));
    r.write('a', 0); r.write('b', 10); r.write('c', 9999); r.write('d', 10_000);
    assert.deepEqual(lines, ['a', 'd (and 2 more refusals since the last report)']);
  });
});

describe('exporter: exposition', () => {
  const outcomes = [
    { success: true, durationS: 0.0012345678912, dnsLookupS: 0.00001, ipProtocol: 4 as const, ipAddrHash: 1255837252, result: { state: 'open', reason: 'syn-ack', rttS: 0.000041, ttl: 64 } },
    { success: false, durationS: 0.002, dnsLookupS: 0, ipProtocol: 6 as const, ipAddrHash: 7, result: { state: 'closed', reason: 'rst', rttS: 0.00003, ttl: 63 } },
    { success: false, durationS: 4.5, dnsLookupS: 0, ipProtocol: 4 as const, ipAddrHash: 7, result: { state: 'filtered', reason: 'no-response', rttS: null, ttl: null } },
    { success: false, durationS: 0.01, dnsLookupS: 0.009, ipProtocol: 0 as const, ipAddrHash: 0 },
  ];

  test('blackbox names and help, then the half-open verdict', () => {
    const text = renderProbe(outcomes[0]);
    assert.match(text, /^# HELP probe_success Displays whether or not the probe was a success\n# TYPE probe_success gauge\nprobe_success 1$/m);
    assert.match(text, /^probe_duration_seconds 0\.001234568$/m);
    assert.match(text, /^probe_ip_protocol 4$/m);
    assert.match(text, /^probe_tcp_half_open_result\{state="open",reason="syn-ack"\} 1$/m);
    assert.match(text, /^probe_tcp_half_open_rtt_seconds 0\.000041$/m);
    assert.match(text, /^probe_tcp_half_open_ttl 64$/m);
    const names = [...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]);
    assert.deepEqual(names, [...names].sort(), 'families sorted by name, as client_golang gathers them');
    assert.doesNotMatch(renderProbe(outcomes[3]), /probe_tcp_half_open/, 'no verdict when no SYN went out');
  });

  test('probe_ip_addr_hash is FNV-1a over the address\'s 16 bytes', () => {
    assert.equal(fnv1a32(new Uint8Array(0)), 0x811c9dc5);
    assert.equal(fnv1a32(new TextEncoder().encode('a')), 0xe40c292c);
  });

  test('promtool check metrics accepts every /probe answer and serve\'s /metrics with the exporter\'s lines', { skip: noPromtool }, async () => {
    for (const o of outcomes) assert.equal(promtoolCheck(renderProbe(o)), '', JSON.stringify(o));
    const c = parseConfig('listen: { http: 9100 }\nexporter:\n  allow: [198.18.0.0/15]\nbackends:\n  - { name: web1, host: 198.18.0.1, port: 80 }\n');
    const monitor = new Monitor(new ScriptedTable(64) as unknown as ProbeSlots, 61000, 61999);
    monitor.reserveOnDemand(8);
    monitor.apply([{ cfg: c.backends[0], addr: addr('198.18.0.1') }]);
    const e = new Exporter(c.exporter, () => {}, async () => []);
    e.attach(monitor, 8);
    assert.equal(promtoolCheck(renderMetrics(monitor) + e.metricsText(monitor.onDemandStats)), '');
  });

  test('debug output has blackbox\'s three parts', () => {
    const d = debugOutput(['ts=x level=info msg="Beginning probe"'], renderProbe(outcomes[0]), cfgOf('exporter: { allow: [198.18.0.0/15] }').modules.tcp_half_open);
    assert.match(d, /^Logs for the probe:\nts=x level=info msg="Beginning probe"\n\n\n\nMetrics that would have been returned:\n# HELP/);
    assert.match(d, /\n\n\nModule configuration:\nprober: tcp_half_open\ntimeout: 5s\n/);
  });
});

/** A probe table that answers per address: open, closed (RST), or nothing; records the SYNs. */
class ScriptedTable implements ProbeSlots {
  readonly sends: number[] = [];
  readonly programmed = new Map<number, { addr: bigint; port: number; sport: number; route?: { source?: string; mark?: number } }>();
  private state: Uint8Array;
  behaviour: (a: bigint, port: number) => number = () => HO_PROBE_STATE_OPEN;
  families = { v4: true, v6: true };
  constructor(readonly capacity: number) { this.state = new Uint8Array(capacity); }
  setSlot(i: number, addr: bigint, port: number, sport: number, route?: { source?: string; mark?: number }): void {
    this.programmed.set(i, { addr, port, sport, route }); this.state[i] = HO_RESULT_PENDING;
  }
  clearSlot(i: number): void { this.programmed.delete(i); this.state[i] = HO_RESULT_PENDING; }
  rearmSlot(i: number, sport: number): void { const p = this.programmed.get(i); if (p) p.sport = sport; this.state[i] = HO_RESULT_PENDING; }
  answered(i: number): boolean { return this.state[i] !== HO_RESULT_PENDING; }
  verdict(i: number): Verdict | null { const s = this.state[i]; return s ? { state: s, rttMs: 0.05, ttl: 64, icmpType: 0, icmpCode: 0, replies: 1 } : null; }
  pollSlots(): Uint32Array { return new Uint32Array(0); }
  sendSlots(slots: Uint32Array): Promise<unknown> {
    for (const s of slots) {
      this.sends.push(s);
      const p = this.programmed.get(s);
      if (p) this.state[s] = this.behaviour(p.addr, p.port);
    }
    return Promise.resolve({ ok: true });
  }
  counters(): Record<string, number> { return {}; }
  sendsFamily(v4: boolean): boolean { return v4 ? this.families.v4 : this.families.v6; }
}

describe('monitor: on-demand slots (probeOnce)', () => {
  const backends = parseConfig(`defaults: { interval: 1s, timeout: 500ms }
backends:
${Array.from({ length: 20 }, (_, i) => `  - { name: b${i}, host: 198.18.1.${i + 1}, port: 80 }`).join('\n')}
`).backends;

  test('slots at the top of the table, never given to backends; a fresh SYN even to a backend\'s own address', async () => {
    const t = new ScriptedTable(64);
    const m = new Monitor(t, 61000, 61999);
    m.reserveOnDemand(8);
    assert.throws(() => m.reserveOnDemand(1));
    m.apply(backends.map((cfg, i) => ({ cfg, addr: v4FromNumber(0xc6120101 + i) })));
    for (const b of m.list()) for (const s of b.slots) assert.ok(s < 56, `backend slot ${s} in the reserved range`);
    const v = await m.probeOnce(addr('198.18.1.1'), 80, {}, Date.now() + 1000);
    assert.equal(v?.state, HO_PROBE_STATE_OPEN);
    assert.ok(t.sends.length === 1 && t.sends[0] >= 56, `sent from slot ${t.sends[0]}`);
  });

  test('property: across applies and a larger table, no backend slot is ever in the on-demand range', () => {
    const all = parseConfig(`defaults: { interval: 1s, timeout: 500ms }
backends:
${Array.from({ length: 60 }, (_, i) => `  - { name: p${i}, host: 198.18.2.${i + 1}, port: 80${i % 3 === 0 ? ', fastinter: 100ms, timeout: 900ms' : ''} }`).join('\n')}
`).backends;
    fc.assert(fc.property(fc.integer({ min: 1, max: 40 }), fc.array(fc.subarray(all.map((_, i) => i)), { minLength: 1, maxLength: 5 }), (n, sets) => {
      // Exactly large enough for every backend and the reserve: a reserve at the wrong end shows.
      let t = new ScriptedTable(slotsFor(all.map((cfg) => ({ cfg }))) + n);
      const m = new Monitor(t, 61000, 61999);
      m.reserveOnDemand(n);
      const check = () => {
        for (const b of m.list()) for (const s of b.slots) if (s >= t.capacity - n) return false;
        return true;
      };
      for (const [k, set] of sets.entries()) {
        m.apply(set.map((i) => ({ cfg: all[i], addr: v4FromNumber(0xc6120201 + i) })));
        if (!check()) return false;
        if (k === 1) { t = new ScriptedTable(t.capacity + 64); m.replaceSlots(t); if (!check()) return false; }
      }
      return m.onDemandSlots === n;
    }), fcParams());
  });

  test('verdicts, no answer by the deadline (null), E_BUSY when every slot is in use, E_INTERFACE for a family with no route', async () => {
    const t = new ScriptedTable(32);
    t.behaviour = (a) => (a === addr('198.18.0.2') ? HO_PROBE_STATE_CLOSED : a === addr('198.18.0.3') ? HO_RESULT_PENDING : HO_PROBE_STATE_OPEN);
    const m = new Monitor(t, 61000, 61999);
    m.reserveOnDemand(2);
    assert.equal((await m.probeOnce(addr('198.18.0.2'), 80, { mark: 5 }, Date.now() + 500))?.state, HO_PROBE_STATE_CLOSED);
    const t0 = Date.now();
    const silent = [m.probeOnce(addr('198.18.0.3'), 80, {}, t0 + 150), m.probeOnce(addr('198.18.0.3'), 80, {}, t0 + 150)];
    await assert.rejects(m.probeOnce(addr('198.18.0.1'), 80, {}, t0 + 150), (e: Error & { code?: string }) => e.code === 'E_BUSY');
    assert.deepEqual(await Promise.all(silent), [null, null]);
    assert.ok(Date.now() - t0 >= 145 && Date.now() - t0 < 1000, `settled after ${Date.now() - t0} ms`);
    assert.equal(m.onDemandStats!.inflight, 0);
    t.families.v6 = false;
    await assert.rejects(m.probeOnce(addr('2001:2::1'), 80, {}, Date.now() + 100), (e: Error & { code?: string }) => e.code === 'E_INTERFACE');
    const none = new Monitor(new ScriptedTable(8), 61000, 61999);
    await assert.rejects(none.probeOnce(addr('198.18.0.1'), 80, {}, Date.now() + 100), (e: Error & { code?: string }) => e.code === 'E_BUSY');
  });

  test('two probes of one target in flight never share a source port; the route (source, mark) reaches the slot', async () => {
    const t = new ScriptedTable(16);
    t.behaviour = () => HO_RESULT_PENDING;
    const m = new Monitor(t, 61000, 61003);
    m.reserveOnDemand(4);
    const d = Date.now() + 60;
    const ps = [0, 1, 2, 3].map(() => m.probeOnce(addr('198.18.0.3'), 80, { source: '198.19.255.1', mark: 9 }, d));
    const sports = [...t.programmed.values()].map((p) => p.sport);
    assert.equal(new Set(sports).size, 4, `source ports ${sports}`);
    assert.deepEqual([...t.programmed.values()][0].route, { source: '198.19.255.1', mark: 9 });
    await Promise.all(ps);
    assert.equal(t.programmed.size, 0, 'slots cleared when settled: a late reply cannot land');
  });
});

/** The exporter over a scripted prober and resolver: allow list, limits, answers. */
class FakeProber implements ProbeOnce {
  readonly asked: Array<{ addr: bigint; port: number; opts: ProbeOptions }> = [];
  hold: Promise<void> | null = null;
  async probeOnce(a: bigint, port: number, opts: ProbeOptions): Promise<Verdict | null> {
    this.asked.push({ addr: a, port, opts });
    if (this.hold) await this.hold;
    return { state: port === 80 ? HO_PROBE_STATE_OPEN : HO_PROBE_STATE_CLOSED, rttMs: 0.05, ttl: 64, icmpType: 0, icmpCode: 0, replies: 1 };
  }
}

const fakeReq = (url: string, headers: Record<string, string> = {}) =>
  ({ method: 'GET', url, headers, socket: { remoteAddress: '127.0.0.1' } }) as unknown as http.IncomingMessage;
const get = (e: Exporter, q: string, h?: Record<string, string>) => e.handle(fakeReq(`/probe?${q}`, h), new URL(`http://x/probe?${q}`));

describe('exporter: allow list and answers', () => {
  const names: Record<string, string[]> = {
    'db.internal': ['198.19.7.7', '2001:2::1:7'],
    'web.internal': ['198.18.0.5'],
    'outside.example': ['203.0.113.9'],
    'sneaky.example': ['::ffff:10.0.0.1'],
  };
  const lookup = async (h: string, family: 0 | 4 | 6) => {
    const a = names[h];
    if (!a) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
    return a.filter((x) => family === 0 || (family === 4) === !x.includes(':') || x.startsWith('::ffff:'));
  };
  const make = (extra = '', log: string[] = []) => {
    const e = new Exporter(cfgOf(`exporter:
  allow: [198.18.0.0/20, "2001:2::/120", db.internal]
  ${extra}`), (m) => log.push(m), lookup);
    const p = new FakeProber();
    e.attach(p, 100);
    return { e, p, log };
  };

  test('off without exporter.allow: 404; starting: 503', async () => {
    assert.equal((await get(new Exporter(undefined, () => {}), 'target=198.18.0.1:80')).status, 404);
    const e = new Exporter(cfgOf('exporter: { allow: [198.18.0.0/15] }'), () => {});
    assert.equal((await get(e, 'target=198.18.0.1:80')).status, 503);
  });

  test('v4, v6 and mapped literals inside are probed; outside is 403 before any SYN', async () => {
    const { e, p, log } = make();
    for (const t of ['198.18.0.1:80', '[2001:2::5]:80', '[::ffff:198.18.0.9]:80']) assert.equal((await get(e, `target=${encodeURIComponent(t)}`)).status, 200, t);
    for (const t of ['198.18.16.1:80', '[2001:2::1:0]:80', '[::ffff:10.0.0.1]:80', '10.0.0.1:80', '[::1]:80', '127.0.0.1:80']) {
      const a = await get(e, `target=${encodeURIComponent(t)}`);
      assert.equal(a.status, 403, t);
      assert.match(a.body, /outside exporter\.allow/);
    }
    assert.equal(p.asked.length, 3);
    assert.equal(log.length, 1, 'refusals rate-limited: one line');
    assert.match(log[0], /^exporter: refused GET \/probe\?target=198\.18\.16\.1%3A80 from 127\.0\.0\.1: 403/);
  });

  test('names: resolved, the address probed must be allowed; a name entry allows what it resolves to; unresolvable is probe_success 0 with 200', async () => {
    const { e, p } = make();
    assert.equal((await get(e, 'target=web.internal:80')).status, 200, 'inside by its address');
    assert.equal((await get(e, 'target=db.internal:3306')).status, 403, 'a name entry allows nothing before it is looked up');
    await e.refreshAllow();
    const db = await get(e, 'target=db.internal:3306');
    assert.equal(db.status, 200);
    assert.match(db.body, /^probe_ip_protocol 6$/m, 'preferred ip6 (blackbox\'s default)');
    assert.equal(p.asked.at(-1)!.addr, addr('2001:2::1:7'));
    assert.equal((await get(e, 'target=outside.example:80')).status, 403);
    assert.equal((await get(e, 'target=sneaky.example:80')).status, 403, 'a mapped answer is its IPv4 address');
    const nx = await get(e, 'target=nowhere.invalid:80');
    assert.equal(nx.status, 200);
    assert.match(nx.body, /^probe_success 0$/m);
    assert.match(nx.body, /^probe_ip_protocol 0$/m);
    const dbg = await get(e, 'target=nowhere.invalid:80&debug=true');
    assert.match(dbg.body, /msg="Resolution with IP protocol failed" err=ENOTFOUND/);
    assert.match(dbg.body, /msg="Probe failed"/);
  });

  test('success and failure; source of the target\'s family and mark reach the prober', async () => {
    const { e, p } = make(`modules: { m: { source: [198.19.255.1, "2001:2:0:ffff::1"], mark: 0x10, preferred_ip_protocol: ip4 } }`);
    const open = await get(e, 'target=198.18.0.1:80&module=m');
    assert.match(open.body, /^probe_success 1$/m);
    assert.match(open.type, /^text\/plain; version=0\.0\.4/);
    assert.deepEqual(p.asked[0].opts, { source: '198.19.255.1', mark: 16 });
    const closed = await get(e, 'target=[2001:2::9]:81&module=m');
    assert.match(closed.body, /^probe_success 0$/m);
    assert.match(closed.body, /^probe_tcp_half_open_result\{state="closed",reason="rst"\} 1$/m);
    assert.deepEqual(p.asked[1].opts, { source: '2001:2:0:ffff::1', mark: 16 });
  });

  test('bounded: beyond max_concurrent 503, beyond max_per_second 429, at once', async () => {
    const log: string[] = [];
    const { e, p } = make('max_concurrent: 3\n  max_per_second: 5', log);
    let open!: () => void;
    p.hold = new Promise((r) => { open = r; });
    const held = [0, 1, 2].map(() => get(e, 'target=198.18.0.1:80'));
    const t0 = Date.now();
    const busy = await get(e, 'target=198.18.0.1:80');
    assert.equal(busy.status, 503);
    assert.equal(busy.headers?.['retry-after'], '1');
    assert.ok(Date.now() - t0 < 50, 'refused at once');
    open();
    assert.deepEqual((await Promise.all(held)).map((a) => a.status), [200, 200, 200]);
    p.hold = null;
    const more = await Promise.all([0, 1, 2, 3].map(() => get(e, 'target=198.18.0.1:80')));
    assert.deepEqual(more.map((a) => a.status).sort(), [200, 200, 429, 429]);
    assert.equal(log.length, 1);
    assert.equal(e.requests.get(503), 1);
    assert.equal(e.requests.get(429), 2);
  });
});

describe('/sd', () => {
  test('http_sd groups: host:port as configured (v6 in brackets), labels, the backend name, __meta_halfopen_*', () => {
    assert.equal(sdAddress('2001:2::1', 80), '[2001:2::1]:80');
    assert.equal(sdAddress('[2001:2::1]', 80), '[2001:2::1]:80');
    assert.equal(sdAddress('db.internal', 3306), 'db.internal:3306');
    const c = parseConfig(`backends:
  - { name: web1, host: 198.18.0.1, port: 80, labels: { pool: web } }
  - { name: v6, host: "2001:2::1", port: 443 }
`);
    const m = new Monitor(new ScriptedTable(16), 61000, 61999);
    m.apply([{ cfg: c.backends[0], addr: addr('198.18.0.1') }, { cfg: c.backends[1], addr: addr('2001:2::1') }]);
    const groups = JSON.parse([...sdChunks(m)].join(''));
    assert.deepEqual(groups[0], {
      targets: ['198.18.0.1:80'],
      labels: { pool: 'web', backend: 'web1', __meta_halfopen_backend: 'web1', __meta_halfopen_address: '198.18.0.1', __meta_halfopen_port: '80', __meta_halfopen_state: 'up' },
    });
    assert.deepEqual(groups[1].targets, ['[2001:2::1]:443']);
  });
});
