// Prometheus text exposition (format 0.0.4) of the monitor's state.
import { Monitor } from './monitor';

/** Six significant digits: float noise like 7.1999e-5 helps nobody. */
const num = (x: number) => String(Number(x.toPrecision(6)));
const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function renderMetrics(m: Monitor): string {
  const bs = m.list();
  const lines: string[] = [];
  const head = (name: string, type: string, help: string) => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  const lbl = (b: (typeof bs)[number]) => {
    const extra = Object.entries(b.cfg.labels).filter(([k]) => !['backend', 'address', 'port', 'state'].includes(k)).map(([k, v]) => `,${k}="${esc(v)}"`).join('');
    return `backend="${esc(b.cfg.name)}",address="${esc(b.address)}",port="${b.cfg.port}"${extra}`;
  };

  head('halfopen_backend_up', 'gauge', 'Whether the backend is up (1) or down (0) after rise/fall.');
  for (const b of bs) lines.push(`halfopen_backend_up{${lbl(b)}} ${b.state === 'up' ? 1 : 0}`);
  head('halfopen_backend_last_rtt_seconds', 'gauge', 'Round-trip time of the backend\'s latest answered check.');
  for (const b of bs) if (b.last?.rtt_ms != null) lines.push(`halfopen_backend_last_rtt_seconds{${lbl(b)}} ${num(b.last.rtt_ms / 1000)}`);
  head('halfopen_probe_results_total', 'counter', 'Completed checks by result state.');
  for (const b of bs) for (const [state, n] of Object.entries(b.counts)) lines.push(`halfopen_probe_results_total{${lbl(b)},state="${state}"} ${n}`);
  head('halfopen_state_changes_total', 'counter', 'Up/down transitions since start.');
  for (const b of bs) lines.push(`halfopen_state_changes_total{${lbl(b)}} ${b.changes}`);

  head('halfopen_probe_duration_seconds', 'histogram', 'Round-trip time of answered checks, all backends.');
  let cum = 0;
  m.buckets.forEach((le, i) => { cum += m.bucketCounts[i]; lines.push(`halfopen_probe_duration_seconds_bucket{le="${le}"} ${cum}`); });
  cum += m.bucketCounts[m.buckets.length];
  lines.push(`halfopen_probe_duration_seconds_bucket{le="+Inf"} ${cum}`);
  lines.push(`halfopen_probe_duration_seconds_sum ${num(m.rttSum)}`, `halfopen_probe_duration_seconds_count ${m.rttCount}`);

  head('halfopen_checks_sent_total', 'counter', 'SYNs sent for checks.');
  lines.push(`halfopen_checks_sent_total ${m.checksSent}`);
  head('halfopen_schedule_lag_seconds', 'gauge', 'Worst lateness of any check behind its schedule.');
  lines.push(`halfopen_schedule_lag_seconds ${bs.reduce((x, b) => Math.max(x, b.lagMs), 0) / 1000}`);
  head('halfopen_backends', 'gauge', 'Backends by state.');
  for (const s of ['up', 'down']) lines.push(`halfopen_backends{state="${s}"} ${bs.filter((b) => b.state === s).length}`);
  return lines.join('\n') + '\n';
}
