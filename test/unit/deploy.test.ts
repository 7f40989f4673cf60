// deploy/: the Prometheus alert rules (promtool check and unit tests) and the
// Grafana dashboard, checked against a /metrics rendering of a real Monitor
// (over a scripted probe table) so neither can name a series serve lacks.
// test/integration/deploy-metrics.test.ts does the same against a live serve.
// Also the systemd unit: systemd-analyze verify, and its security exposure.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yaml from 'js-yaml';
import { Monitor } from '../../src/daemon/monitor';
import { renderMetrics } from '../../src/daemon/metrics';
import { Exporter } from '../../src/daemon/exporter/exporter';
import { renderProbe } from '../../src/daemon/exporter/exposition';
import { parseConfig } from '../../src/daemon/config';
import { COUNTER_NAMES, HO_PROBE_STATE_CLOSED, HO_PROBE_STATE_OPEN } from '../../src/contract.generated';
import type { Engine } from '../../src/engine/engine';
import type { Verdict } from '../../src/engine/probe-table';
import { DEPLOY, dashboardExprs, exposedNames, loadDashboard, metricNames, missingNames, ruleExprs } from '../helpers/promql';

const RULES = path.join(DEPLOY, 'prometheus', 'halfopen.rules.yml');
const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
const noPromtool = promtool.error ? 'promtool is not installed (apt-get install prometheus; scripts/setup.sh does)' : false;

/** A probe table that answers every SYN at once: open for some addresses, RST for the others. */
class AnsweringTable {
  readonly capacity = 64;
  private readonly addr = new Map<number, bigint>();
  private readonly state = new Map<number, number>();
  private pending: number[] = [];
  constructor(private readonly closed: Set<bigint>) {}
  setSlot(i: number, addr: bigint): void { this.addr.set(i, addr); }
  clearSlot(i: number): void { this.state.delete(i); }
  rearmSlot(i: number): void { this.state.delete(i); }
  answered(i: number): boolean { return this.state.has(i); }
  verdict(i: number): Verdict | null {
    const s = this.state.get(i);
    return s ? { state: s, rttMs: s === HO_PROBE_STATE_OPEN ? 0.2 : 0.1, ttl: 64, icmpType: 0, icmpCode: 0, replies: 1 } : null;
  }
  pollSlots(): Uint32Array { const out = Uint32Array.from(this.pending); this.pending = []; return out; }
  sendSlots(slots: Uint32Array): Promise<unknown> {
    for (const s of slots) {
      this.state.set(s, this.closed.has(this.addr.get(s)!) ? HO_PROBE_STATE_CLOSED : HO_PROBE_STATE_OPEN);
      this.pending.push(s);
    }
    return Promise.resolve({ ok: true });
  }
  counters(): Record<string, number> { return Object.fromEntries(COUNTER_NAMES.map((n, i) => [n, i])); }
}

/** /metrics of a monitor with one backend up and one down on RST. */
async function renderFleet(): Promise<string> {
  const cfg = parseConfig(`defaults: { interval: 1s, timeout: 500ms, rise: 1, fall: 1, jitter: 0 }
backends:
  - { name: web1, host: 198.18.0.1, port: 80, labels: { pool: web } }
  - { name: web2, host: 198.18.0.2, port: 80 }
`);
  const down = 0xffffc6120002n;
  const monitor = new Monitor(new AnsweringTable(new Set([down])) as unknown as Engine, 61000, 61999);
  monitor.apply([{ cfg: cfg.backends[0], addr: 0xffffc6120001n }, { cfg: cfg.backends[1], addr: down }]);
  for (let t = Date.now(), end = t + 3000; t <= end; t += 50) {
    monitor.tick(t);
    await Promise.resolve();
  }
  assert.deepEqual(monitor.list().map((b) => [b.cfg.name, b.state]), [['web1', 'up'], ['web2', 'down']]);
  return renderMetrics(monitor);
}

describe('deploy: metric names', () => {
  test('PromQL metric-name extraction', () => {
    assert.deepEqual(metricNames('sum by (le) (rate(a_bucket{x="y",z=~"$instance"}[$__rate_interval]))'), ['a_bucket']);
    assert.deepEqual(metricNames('a * on (instance, backend) group_left () (b == 0) and c offset 5m > 1e3'), ['a', 'b', 'c']);
    assert.deepEqual(metricNames('absent(up{job="halfopen"}) or clamp_min(sum without (le) (x), 1)'), ['up', 'x']);
    assert.deepEqual(metricNames('increase(m{kind="by (z)"}[5m:1m]) / ignoring(kind) n'), ['m', 'n']);
  });

  test('serve renders halfopen_backend_last_result with the latest state and reason', async () => {
    const text = await renderFleet();
    assert.match(text, /^halfopen_backend_last_result\{backend="web1",address="198\.18\.0\.1",port="80",pool="web",state="open",reason="syn-ack"\} 1$/m);
    assert.match(text, /^halfopen_backend_last_result\{backend="web2",address="198\.18\.0\.2",port="80",state="closed",reason="rst"\} 1$/m);
  });

  test('every metric the rules and the dashboard use is one serve exposes (/metrics, and /probe\'s answers)', async () => {
    const exporter = new Exporter(parseConfig('listen: { http: 9100 }\nexporter: { allow: [198.18.0.0/15] }\n').exporter, () => {});
    const probe = renderProbe({ success: false, durationS: 0.1, dnsLookupS: 0, ipProtocol: 4, ipAddrHash: 1, result: { state: 'closed', reason: 'rst', rttS: 0.0001, ttl: 64 } });
    const exposed = exposedNames(await renderFleet() + exporter.metricsText({ inflight: 0, size: 100 }) + probe);
    const rules = yaml.load(fs.readFileSync(RULES, 'utf8'));
    assert.deepEqual(missingNames(exposed, rules, loadDashboard()), []);
  });

  test('promtool check metrics accepts the rendering', { skip: noPromtool }, async () => {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: await renderFleet(), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });
});

describe('deploy: Grafana dashboard', () => {
  const dash = loadDashboard();
  test('loads, with unique panel ids and a query on every panel', () => {
    assert.equal(dash.uid, 'halfopen');
    const ids = dash.panels.map((p: any) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    for (const p of dash.panels) assert.ok(p.targets?.length && p.targets.every((t: any) => t.expr && t.refId), p.title);
  });

  test('has the panels operators asked for', () => {
    const byTitle = new Map(dash.panels.map((p: any) => [p.title, p]));
    const want: Array<[string, string, RegExp]> = [
      ['Fleet up/down', 'timeseries', /halfopen_backends/],
      ['State changes', 'timeseries', /halfopen_state_changes_total/],
      ['Check round-trip time', 'heatmap', /halfopen_probe_duration_seconds_bucket/],
      ['Schedule lag', 'timeseries', /halfopen_schedule_lag_seconds/],
      ['Checks/s and results', 'timeseries', /halfopen_checks_sent_total/],
      ['XDP matcher', 'timeseries', /halfopen_xdp_packets_total/],
      ['Down backends', 'table', /halfopen_backend_last_result[\s\S]*halfopen_backend_up\{[^}]*\} == 0/],
      ['Stale backends and oldest check', 'timeseries', /halfopen_backend_stale/],
      ['Drained and in maintenance', 'timeseries', /halfopen_backend_admin_state/],
      ['/probe requests', 'timeseries', /halfopen_exporter_requests_total/],
      ['/probe verdicts and slots', 'timeseries', /halfopen_exporter_probes_total/],
      ['Probed targets not open', 'table', /probe_tcp_half_open_result\{state!="open"\} == 1/],
      ['Slowest probed targets', 'timeseries', /probe_tcp_half_open_rtt_seconds/],
    ];
    for (const [title, type, expr] of want) {
      const p: any = byTitle.get(title);
      assert.ok(p, `panel "${title}"`);
      assert.equal(p.type, type, title);
      assert.ok(p.targets.some((t: any) => expr.test(t.expr)), `${title}: ${expr}`);
    }
    assert.ok(dashboardExprs(dash).length > 10);
  });
});

describe('deploy: Prometheus alert rules', () => {
  test('cover the alerts of the runbook', () => {
    const rules: any = yaml.load(fs.readFileSync(RULES, 'utf8'));
    const alerts = rules.groups.flatMap((g: any) => g.rules.map((r: any) => r.alert));
    assert.deepEqual(alerts, ['HalfopenBackendDown', 'HalfopenManyBackendsDown', 'HalfopenSchedulerLag',
      'HalfopenInvalidReplySurge', 'HalfopenXdpRingOverflow', 'HalfopenProbeRefusing', 'HalfopenProbeForbidden', 'HalfopenProbeTargetDown',
      'HalfopenNotScraped', 'HalfopenAbsent']);
    assert.ok(ruleExprs(rules).some((e) => /kind="ringbuf_full"/.test(e)));
  });

  test('promtool check rules', { skip: noPromtool }, () => {
    const r = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  test('promtool test rules: each alert firing and not firing', { skip: noPromtool }, () => {
    const file = path.join(DEPLOY, 'prometheus', 'halfopen.rules.test.yml');
    const tests: any = yaml.load(fs.readFileSync(file, 'utf8'));
    const rules: any = yaml.load(fs.readFileSync(RULES, 'utf8'));
    // Every alert appears in the tests at least once with alerts expected and once with none.
    for (const r of rules.groups.flatMap((g: any) => g.rules)) {
      const cases = tests.tests.flatMap((t: any) => t.alert_rule_test ?? []).filter((c: any) => c.alertname === r.alert);
      assert.ok(cases.some((c: any) => c.exp_alerts.length > 0), `${r.alert} firing`);
      assert.ok(cases.some((c: any) => c.exp_alerts.length === 0), `${r.alert} not firing`);
    }
    const run = spawnSync('promtool', ['test', 'rules', file], { cwd: path.dirname(file), encoding: 'utf8' });
    assert.equal(run.status, 0, run.stdout + run.stderr);
  });
});

describe('deploy: example config', () => {
  test('/etc/halfopen/serve.yaml as shipped is a valid serve config', () => {
    const cfg = parseConfig(fs.readFileSync(path.join(DEPLOY, 'etc', 'serve.yaml'), 'utf8'));
    assert.ok(cfg.backends.length > 0);
    assert.equal(cfg.events, '/var/log/halfopen/events.ndjson', 'in the unit\'s LogsDirectory');
    assert.equal(cfg.stateFile, '/var/lib/halfopen/state.json', 'in the unit\'s StateDirectory');
  });
});

describe('deploy: systemd unit', () => {
  const UNIT = path.join(DEPLOY, 'systemd', 'halfopen.service');
  const text = fs.readFileSync(UNIT, 'utf8');
  const directive = (k: string) => text.split('\n').filter((l) => l.startsWith(`${k}=`)).map((l) => l.slice(k.length + 1));
  const noAnalyze = spawnSync('systemd-analyze', ['--version']).error ? 'systemd-analyze is not installed (package systemd)' : false;

  // CAP_PERFMON beside the three of the design: without it the verifier
  // refuses the parser's variable packet offsets (see the unit's comment;
  // test/package runs serve with exactly this set).
  test('runs serve unprivileged with exactly CAP_BPF CAP_NET_ADMIN CAP_NET_RAW CAP_PERFMON, sandboxed, with a watchdog', () => {
    assert.deepEqual(directive('User'), ['halfopen']);
    for (const k of ['AmbientCapabilities', 'CapabilityBoundingSet']) assert.deepEqual(directive(k), ['CAP_BPF CAP_NET_ADMIN CAP_NET_RAW CAP_PERFMON'], k);
    for (const [k, v] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes'], ['StateDirectory', 'halfopen'],
      ['ExecReload', '/bin/kill -HUP $MAINPID'], ['Restart', 'on-failure'], ['Type', 'notify'], ['NotifyAccess', 'main']]) assert.deepEqual(directive(k), [v], k);
    assert.match(directive('WatchdogSec')[0], /^\d+s$/);
    assert.deepEqual(directive('ExecStart'), ['/usr/bin/halfopen serve --config /etc/halfopen/serve.yaml']);
  });

  // verify checks that ExecStart's program exists and that man:halfopen(1)
  // resolves: point both at this tree, everything else is checked as shipped.
  const withLocalPaths = (fn: (unit: string, env: NodeJS.ProcessEnv) => void) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-unit-'));
    try {
      const bin = path.join(__dirname, '..', '..', 'src', 'cli', 'main.js');
      fs.mkdirSync(path.join(dir, 'man', 'man1'), { recursive: true });
      fs.copyFileSync(path.join(DEPLOY, '..', 'man', 'halfopen.1'), path.join(dir, 'man', 'man1', 'halfopen.1'));
      const unit = path.join(dir, 'halfopen.service');
      fs.writeFileSync(unit, text.replace('ExecStart=/usr/bin/halfopen', `ExecStart=${bin}`));
      fn(unit, { ...process.env, MANPATH: path.join(dir, 'man'), SYSTEMD_LOG_COLOR: '0' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };

  test('systemd-analyze verify passes', { skip: noAnalyze }, () => {
    withLocalPaths((unit, env) => {
      const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', env });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.equal(r.stderr.trim(), '');
    });
  });

  test('systemd-analyze security rates it 2.5 or better (OK)', { skip: noAnalyze }, () => {
    withLocalPaths((unit, env) => {
      const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', unit], { encoding: 'utf8', env });
      const m = /Overall exposure level for halfopen\.service: ([\d.]+) (\w+)/.exec(r.stdout + r.stderr);
      assert.ok(m, r.stdout + r.stderr);
      assert.ok(Number(m[1]) <= 2.5, `exposure ${m[1]} ${m[2]}`);
    });
  });
});
