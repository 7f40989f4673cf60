// The /metrics exposition as serve rendered it before src/daemon/metrics.ts
// wrote bytes into reused buffers: built from strings, one template per line.
// test/unit/metrics.test.ts holds the two to the same bytes.
import { Monitor, Backend } from '../../src/daemon/monitor';
import { globalSeries } from '../../src/daemon/metrics';

const CHUNK = 500;
/** Backends whose state is read between two yields (a read is ~0.2 µs). */
const STATE_CHUNK = 5000;

/** Six significant digits: float noise like 7.1999e-5 helps nobody. */
const num = (x: number) => String(Number(x.toPrecision(6)));
const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

const labelCache = new WeakMap<Backend, string>();
function labels(b: Backend): string {
  let l = labelCache.get(b);
  if (l === undefined) {
    const extra = Object.entries(b.cfg.labels).filter(([k]) => !['backend', 'address', 'port', 'state', 'reason'].includes(k)).map(([k, v]) => `,${k}="${esc(v)}"`).join('');
    l = `backend="${esc(b.cfg.name)}",address="${esc(b.address)}",port="${b.cfg.port}"${extra}`;
    labelCache.set(b, l);
  }
  return l;
}

const head = (name: string, type: string, help: string) => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;

type PerBackend = (b: Backend, l: string, now: number, up: boolean) => string;
const SERIES: Array<[string, string, string, PerBackend]> = [
  ['halfopen_backend_up', 'gauge', 'Whether the backend is up (1) or down (0) after rise/fall; 0 while its latest check is stale.',
    (b, l, _now, up) => `halfopen_backend_up{${l}} ${up ? 1 : 0}\n`],
  ['halfopen_backend_stale', 'gauge', 'Whether the backend\'s latest completed check is older than 2 x interval + timeout (then it is not reported up).',
    (b, l, now) => `halfopen_backend_stale{${l}} ${b.isStale(now) ? 1 : 0}\n`],
  ['halfopen_backend_check_age_seconds', 'gauge', 'Seconds since the backend\'s latest check completed (since start before the first).',
    (b, l, now) => `halfopen_backend_check_age_seconds{${l}} ${num((now - (b.last?.ts ?? b.born)) / 1000)}\n`],
  ['halfopen_backend_last_rtt_seconds', 'gauge', 'Round-trip time of the backend\'s latest answered check.',
    (b, l) => (b.last?.rtt_ms != null ? `halfopen_backend_last_rtt_seconds{${l}} ${num(b.last.rtt_ms / 1000)}\n` : '')],
  ['halfopen_backend_admin_state', 'gauge', 'The backend\'s administrative state: 1 for the current one of ready, drain, maint.',
    (b, l) => `halfopen_backend_admin_state{${l},state="ready"} ${b.admin === 'ready' ? 1 : 0}\nhalfopen_backend_admin_state{${l},state="drain"} ${b.admin === 'drain' ? 1 : 0}\nhalfopen_backend_admin_state{${l},state="maint"} ${b.admin === 'maint' ? 1 : 0}\n`],
  ['halfopen_backend_weight_percent', 'gauge', 'Weight announced to the agent, percent of the configured one (slow start ramps it).',
    (b, l, now) => `halfopen_backend_weight_percent{${l}} ${b.weightNow(now)}\n`],
  ['halfopen_probe_results_total', 'counter', 'Completed checks by result state.',
    (b, l) => `halfopen_probe_results_total{${l},state="open"} ${b.counts.open}\nhalfopen_probe_results_total{${l},state="closed"} ${b.counts.closed}\n` +
      `halfopen_probe_results_total{${l},state="filtered"} ${b.counts.filtered}\nhalfopen_probe_results_total{${l},state="unreachable"} ${b.counts.unreachable}\n`],
  ['halfopen_state_changes_total', 'counter', 'Up/down transitions since start.',
    (b, l) => `halfopen_state_changes_total{${l}} ${b.changes}\n`],
  // Info-style: the value is always 1 and the answer is in the labels, so a
  // dashboard can list down backends with why (join on halfopen_backend_up == 0).
  ['halfopen_backend_last_result', 'gauge', 'The latest completed check of the backend, as labels: state (open, closed, filtered, unreachable) and reason; always 1.',
    (b, l) => (b.last ? `halfopen_backend_last_result{${l},state="${b.last.state}",reason="${esc(b.last.reason)}"} 1\n` : '')],
];

interface MetricsOptions {
  /** The per-backend series (halfopen_backend_*, halfopen_probe_results_total, ...); default true. */
  perBackend?: boolean;
}

/** The exposition in chunks; the caller may yield to the event loop between them. */
function* metricChunks(m: Monitor, extra?: () => string, opts: MetricsOptions = {}): Generator<string> {
  const bs = m.list();
  const now = Date.now();
  // Each backend's state and labels once per scrape, not once per series.
  const up = new Uint8Array(bs.length);
  let ups = 0;
  for (let i = 0; i < bs.length; i++) {
    if (bs[i].state === 'up') { up[i] = 1; ups++; }
    if ((i + 1) % STATE_CHUNK === 0) yield '';
  }
  if (opts.perBackend !== false) {
    const ls: string[] = new Array(bs.length);
    for (const [name, type, help, line] of SERIES) {
      let out = head(name, type, help);
      for (let i = 0; i < bs.length; i++) {
        out += line(bs[i], ls[i] ??= labels(bs[i]), now, up[i] === 1);
        if ((i + 1) % CHUNK === 0) { yield out; out = ''; }
      }
      yield out;
    }
  }
  // The global part is one function in both (the per-backend series are what differ).
  yield globalSeries(m, ups, bs.length, now);
  if (extra) yield extra(); // the push targets' counters (src/daemon/push/driver.ts)
}

export const referenceMetrics = (m: Monitor, extra?: () => string, opts: MetricsOptions = {}): string => [...metricChunks(m, extra, opts)].join('');
