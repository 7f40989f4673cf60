// The benchmark report: markdown tables (median (min–max) per column, ratios
// against the baseline tool), the machine's facts, and an SVG chart written
// by hand (no dependencies): probes/s of the sweep scenarios and
// whole-process latency of the single check.
//
// Column keys name a metric of the runs; `metric@pNN` is the NNth percentile
// of that metric over the runs instead of the median (no range shown).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Column, Measurement, ROOT, ScenarioResult, median, percentile, toolVersion } from './lib';

export interface ScenarioOutcome {
  id: string;
  status: 'ok' | 'failed' | 'skipped';
  /** Time the scenario took, set-up and teardown included. */
  seconds: number;
  result?: ScenarioResult;
  error?: string;
  reason?: string;
}

export interface Report {
  startedAt: string;
  command: string;
  totalSeconds: number;
  quick: boolean;
  runs: number;
  checkRuns: number;
  machine: Record<string, string>;
  scenarios: ScenarioOutcome[];
}

// ── machine facts

const sh = (cmd: string): string => (spawnSync('sh', ['-c', cmd], { encoding: 'utf8' }).stdout ?? '').trim();

/** "zmap 2.1.1": the name and the first version number a command prints, or "not installed". */
function ver(name: string, cmd: string): string {
  const line = toolVersion(cmd);
  const v = /\d+\.\d+(\.\d+)?([-~+.\w]*)?/.exec(line)?.[0];
  return v && !/not installed/.test(line) ? `${name} ${v}` : `${name}: not installed`;
}

export function machineFacts(): Record<string, string> {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const commit = sh(`git -C ${ROOT} rev-parse --short HEAD 2>/dev/null`);
  const dirty = sh(`git -C ${ROOT} status --porcelain --untracked-files=no 2>/dev/null`) !== '';
  const osName = /^PRETTY_NAME="?([^"\n]*)/m.exec(fs.existsSync('/etc/os-release') ? fs.readFileSync('/etc/os-release', 'utf8') : '')?.[1] ?? os.type();
  return {
    cores: `${os.availableParallelism()} × ${os.cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU'}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: `Linux ${os.release()}`,
    os: osName,
    node: `Node ${process.versions.node}`,
    halfopen: `halfopen ${pkg.version}${commit ? ` (${commit}${dirty ? ', with uncommitted changes' : ''})` : ''}`,
    zmap: ver('zmap', 'zmap --version'),
    masscan: ver('masscan', 'masscan --version'),
    nmap: ver('nmap', 'nmap --version'),
    haproxy: ver('HAProxy', 'haproxy -v'),
    check_tcp: ver('monitoring-plugins check_tcp', '/usr/lib/nagios/plugins/check_tcp -V'),
    clang: ver('clang', 'clang --version'),
    libbpf: ver('libbpf', "dpkg-query -W -f='${Version}\\n' libbpf1 | sed 's/^[0-9]*://'"),
    iproute2: ver('iproute2', 'ip -V'),
  };
}

// ── statistics of one column

interface Stat { mid: number; min: number; max: number; n: number; pct: boolean }

export function stat(runs: Measurement[], key: string): Stat | null {
  const m = /^(.*)@p(\d+)$/.exec(key);
  const base = m ? m[1] : key;
  const xs = runs.map((r) => r[base]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  if (!xs.length) return null;
  return { mid: m ? percentile(xs, Number(m[2])) : median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length, pct: !!m };
}

export function num(x: number, digits = 2): string {
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function cell(runs: Measurement[], c: Column): string {
  const s = stat(runs, c.key);
  if (!s) return '–';
  const d = c.digits ?? 2;
  if (s.pct || s.n < 2 || num(s.min, d) === num(s.max, d)) return num(s.mid, d);
  return `${num(s.mid, d)} (${num(s.min, d)}–${num(s.max, d)})`;
}

/** > 1 means the baseline (halfopen) is better: baseline ÷ peer for higher-is-better, peer ÷ baseline for lower-is-better. */
export function ratio(base: Measurement[], peer: Measurement[], c: Column): number | null {
  const b = stat(base, c.key), p = stat(peer, c.key);
  if (!b || !p || !c.ratio || b.mid <= 0 || p.mid <= 0) return null;
  return c.ratio === 'higher-is-better' ? b.mid / p.mid : p.mid / b.mid;
}

const fmtRatio = (x: number | null) => (x === null ? '–' : `${num(x, x >= 10 ? 0 : 2)}×`);
const esc = (s: string) => s.replace(/\|/g, '\\|');

function ratioHeader(c: Column): string {
  return c.ratio === 'higher-is-better' ? `${c.label.split(' (')[0]}: halfopen ÷ peer` : `${c.label.split(' (')[0]}: peer ÷ halfopen`;
}

// ── markdown

type Row = ScenarioResult['rows'][number];

/**
 * The baseline row a peer row is compared with: the row named exactly as the
 * baseline, else the baseline row with the same "(…)" suffix as the peer
 * ("halfopen serve (1000)" for "HAProxy checks (1000)"), else none.
 */
export function baselineFor(r: ScenarioResult, row: Row): Row | undefined {
  const exact = r.rows.find((x) => x.tool === r.baseline);
  if (exact) return exact;
  const tag = /\([^)]*\)\s*$/.exec(row.tool)?.[0];
  return tag ? r.rows.find((x) => x.tool.startsWith(`${r.baseline} `) && x.tool.endsWith(tag)) : undefined;
}

export function renderScenario(o: ScenarioOutcome): string {
  if (o.status === 'skipped') return `## ${o.id}: skipped\n\n${o.reason ?? ''}\n\n`;
  if (o.status === 'failed' || !o.result) return `## ${o.id}: FAILED\n\nThe scenario failed after ${num(o.seconds, 0)} s; the others ran on.\n\n\`\`\`\n${(o.error ?? 'no result').trim()}\n\`\`\`\n\n`;
  const r = o.result;
  const bases = r.rows.filter((x) => x.tool === r.baseline || x.tool.startsWith(`${r.baseline} `));
  // No ratio columns in a table of baseline rows only (nothing to compare with).
  const ratioCols = bases.length && bases.length < r.rows.length ? r.columns.filter((c) => c.ratio) : [];
  // A row's target (what the figure should reach, and whether it does) sits beside its figures.
  const targets = r.rows.some((x) => x.target);
  const head = ['tool', 'settings', ...r.columns.map((c) => c.label), ...(targets ? ['target'] : []), ...ratioCols.map(ratioHeader), 'runs'];
  const lines = [
    `## ${r.title}`,
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`,
  ];
  for (const row of r.rows) {
    const base = baselineFor(r, row);
    const ratios = ratioCols.map((c) => (bases.includes(row) ? 'baseline' : base ? fmtRatio(ratio(base.runs, row.runs, c)) : '–'));
    lines.push(`| ${bases.includes(row) ? `**${row.tool}**` : row.tool} | \`${esc(row.settings)}\` | ${r.columns.map((c) => cell(row.runs, c)).join(' | ')} | ${targets ? `${esc(row.target ?? '–')} | ` : ''}${ratios.join(' | ')}${ratioCols.length ? ' | ' : ''}${row.runs.length} |`);
  }
  lines.push('');
  for (const n of r.notes) lines.push(`- ${n}`);
  if (ratioCols.length) {
    const names = (w: Column['ratio']) => ratioCols.filter((c) => c.ratio === w).map((c) => c.label.split(' (')[0]).join(', ');
    const hi = names('higher-is-better'), lo = names('lower-is-better');
    lines.push(`- Ratio columns compare each row with **${r.baseline}**: above 1 means ${r.baseline} is better, below 1 that the other row is (${[hi && `${hi}: ${r.baseline} ÷ row`, lo && `${lo}: row ÷ ${r.baseline}`].filter(Boolean).join('; ')}).`);
  }
  lines.push(`- Median (min–max) over the runs in the last column. Scenario time, set-up included: ${num(o.seconds, 0)} s.`);
  return `${lines.join('\n')}\n\n`;
}

export function renderMarkdown(rep: Report): string {
  const m = rep.machine;
  const out = [
    `# halfopen benchmarks`,
    '',
    `${rep.startedAt} · \`${rep.command}\` · ${rep.quick ? 'quick mode' : 'default sizes'} · total ${num(rep.totalSeconds / 60, 1)} min`,
    '',
    `Machine: ${m.cores}, ${m.memory}, ${m.kernel} (${m.os}), ${m.node}; ${m.halfopen}; ${[m.zmap, m.masscan, m.nmap, m.haproxy, m.check_tcp, m.clang, m.libbpf, m.iproute2].join(', ')}.`,
    '',
    `Every figure is the median over repeated runs with (min–max): ${rep.runs} run(s) per sweep and send-path measurement (5 for the 65,536-target sweep), ${rep.checkRuns} per command in the single check; the runs column says how many. ` +
      'Correctness is scored against the fleet\'s ground truth (how the namespaces were built), never against another tool. Wall time is the whole process, start-up included. ' +
      'The fleet\'s kernel runs on the same cores as the tools.',
    '',
  ];
  return out.join('\n') + '\n' + rep.scenarios.map(renderScenario).join('');
}

// ── SVG chart

const xmlEsc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const shortNum = (x: number) => (x >= 1e6 ? `${num(x / 1e6, 2)}M` : x >= 1e3 ? `${num(x / 1e3, x >= 1e5 || x % 1e3 === 0 ? 0 : 1)}k` : num(x, x % 1 ? 1 : 0));

function colour(tool: string, baseline: string): string {
  if (tool === baseline) return '#1f5fa8';
  if (/^(halfopen|check_tcp_half_open)/.test(tool)) return '#6f9fd8';
  if (/^node /.test(tool)) return '#9a9a9a';
  return '#e07b24';
}

interface Bar { label: string; mid: number; lo: number; hi: number; colour: string; text: string }
interface Group { title: string; bars: Bar[] }

/** A line chart of (x, y) points, axes from 0 to round maxima. */
function linePanel(y0: number, title: string, points: Array<[number, number]>, width: number): { svg: string; height: number } {
  const H = 160, LEFT = 60, RIGHT = 20;
  const finite = points.filter(([, v]) => Number.isFinite(v));
  const round = (top: number) => {
    const mag = 10 ** Math.floor(Math.log10(Math.max(top, 1e-9) / 4));
    const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((st) => st * 4 >= top)!;
    return { step, max: Math.ceil(top / step) * step };
  };
  const xs = round(Math.max(1, ...finite.map(([t]) => t)));
  const ys = round(Math.max(1e-9, ...finite.map(([, v]) => v)));
  const top = y0 + 28, plotW = width - LEFT - RIGHT;
  const px = (t: number) => LEFT + (t / xs.max) * plotW;
  const py = (v: number) => top + H - (v / ys.max) * H;
  const parts = [`<text x="10" y="${y0 + 16}" class="title">${xmlEsc(title)}</text>`];
  for (let v = 0; v <= ys.max + 1e-9; v += ys.step) {
    parts.push(`<line x1="${LEFT}" y1="${py(v).toFixed(1)}" x2="${width - RIGHT}" y2="${py(v).toFixed(1)}" class="grid"/>`);
    parts.push(`<text x="${LEFT - 6}" y="${(py(v) + 3).toFixed(1)}" class="axis" text-anchor="end">${shortNum(v)}</text>`);
  }
  for (let t = 0; t <= xs.max + 1e-9; t += xs.step) parts.push(`<text x="${px(t).toFixed(1)}" y="${top + H + 12}" class="axis" text-anchor="middle">${shortNum(t)}</text>`);
  parts.push(`<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="${finite.map(([t, v]) => `${px(t).toFixed(1)},${py(v).toFixed(1)}`).join(' ')}"/>`);
  return { svg: parts.join('\n'), height: H + 50 };
}

function panel(y0: number, title: string, subtitle: string, groups: Group[], width: number): { svg: string; height: number } {
  const LABEL = 250, RIGHT = 190, BAR = 16, GAP = 6;
  const plotW = width - LABEL - RIGHT - 20;
  // Axis to a round number: ticks at 1, 2, 2.5 or 5 × a power of ten.
  const top = Math.max(1e-9, ...groups.flatMap((g) => g.bars.map((b) => b.hi)));
  const mag = 10 ** Math.floor(Math.log10(top / 4));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((st) => st * 4 >= top)!;
  const ticks = Math.ceil(top / step);
  const max = ticks * step;
  const x = (v: number) => LABEL + (v / max) * plotW;
  const parts: string[] = [];
  let y = y0;
  parts.push(`<text x="10" y="${y + 16}" class="title">${xmlEsc(title)}</text>`);
  parts.push(`<text x="10" y="${y + 33}" class="sub">${xmlEsc(subtitle)}</text>`);
  y += 48;
  for (const g of groups) {
    parts.push(`<text x="10" y="${y + 12}" class="group">${xmlEsc(g.title)}</text>`);
    y += 18;
    for (const b of g.bars) {
      const cy = y + BAR / 2;
      parts.push(`<text x="${LABEL - 8}" y="${cy + 4}" class="label" text-anchor="end">${xmlEsc(b.label)}</text>`);
      parts.push(`<rect x="${LABEL}" y="${y}" width="${Math.max(1, x(b.mid) - LABEL).toFixed(1)}" height="${BAR}" fill="${b.colour}"/>`);
      if (b.hi > b.lo) {
        parts.push(`<line x1="${x(b.lo).toFixed(1)}" y1="${cy}" x2="${x(b.hi).toFixed(1)}" y2="${cy}" class="whisker"/>`);
        for (const v of [b.lo, b.hi]) parts.push(`<line x1="${x(v).toFixed(1)}" y1="${cy - 5}" x2="${x(v).toFixed(1)}" y2="${cy + 5}" class="whisker"/>`);
      }
      parts.push(`<text x="${(Math.max(x(b.hi), x(b.mid)) + 6).toFixed(1)}" y="${cy + 4}" class="value">${xmlEsc(b.text)}</text>`);
      y += BAR + GAP;
    }
    y += 8;
  }
  // Axis: light grid lines at quarters of the largest value, under the bars.
  const grid: string[] = [];
  for (let i = 0; i <= ticks; i++) {
    const v = step * i;
    grid.push(`<line x1="${x(v).toFixed(1)}" y1="${y0 + 44}" x2="${x(v).toFixed(1)}" y2="${y - 4}" class="grid"/>`);
    grid.push(`<text x="${x(v).toFixed(1)}" y="${y + 10}" class="axis" text-anchor="middle">${shortNum(v)}</text>`);
  }
  return { svg: [...grid, ...parts].join('\n'), height: y + 20 - y0 };
}

export function renderSvg(rep: Report): string {
  const W = 1000;
  const ok = rep.scenarios.filter((s) => s.status === 'ok' && s.result).map((s) => s.result!);
  const speed: Group[] = [];
  for (const r of ok) {
    const key = r.columns.find((c) => c.key === 'pps' || c.key === 'synPps')?.key;
    if (!key) continue;
    const bars: Bar[] = [];
    for (const row of r.rows) {
      const s = stat(row.runs, key);
      if (!s) continue;
      bars.push({ label: row.tool, mid: s.mid, lo: s.min, hi: s.max, colour: colour(row.tool, r.baseline), text: `${shortNum(s.mid)}/s` });
    }
    if (bars.length) speed.push({ title: r.title, bars });
  }
  const latency: Group[] = [];
  for (const r of ok) {
    if (!r.columns.some((c) => c.key === 'ms')) continue;
    const bars: Bar[] = [];
    for (const row of r.rows) {
      const s = stat(row.runs, 'ms'), p = stat(row.runs, 'ms@p95');
      if (!s || !p) continue;
      bars.push({ label: row.tool, mid: s.mid, lo: s.mid, hi: p.mid, colour: colour(row.tool, r.baseline), text: `${num(s.mid, 1)} ms (p95 ${num(p.mid, 1)})` });
    }
    if (bars.length) latency.push({ title: r.title, bars });
  }
  const rounds: Group[] = [];
  for (const r of ok) {
    if (!r.columns.some((c) => c.key === 'roundS')) continue;
    const bars: Bar[] = [];
    for (const row of r.rows) {
      const s = stat(row.runs, 'roundS'), d = stat(row.runs, 'detectS');
      if (!s) continue;
      bars.push({ label: row.tool, mid: s.mid, lo: s.min, hi: s.max, colour: colour(row.tool, r.baseline), text: `${num(s.mid, 1)} s${d ? ` (down after ${num(d.mid, 1)} s)` : ''}` });
    }
    if (bars.length) rounds.push({ title: r.title, bars });
  }
  const body: string[] = [];
  let y = 10;
  if (speed.length) {
    const p = panel(y, 'Probes per second (higher is better)', 'bar: median; whisker: min–max over the runs', speed, W);
    body.push(p.svg); y += p.height + 10;
  }
  if (latency.length) {
    const p = panel(y, 'Single check: whole-process time, ms (lower is better)', 'bar: median; whisker: up to the 95th percentile', latency, W);
    body.push(p.svg); y += p.height + 10;
  }
  if (rounds.length) {
    const p = panel(y, 'farmguardian: one round of sequential checks, s (lower is better)', 'bar: round time; in brackets: a backend dropped mid-run is marked down after', rounds, W);
    body.push(p.svg); y += p.height + 10;
  }
  y = seriesPanels(ok, body, y, W);
  return svgDocument(rep, body, y, W);
}

/** Appends a line panel per time series of the results to body, from y down; returns the y below them. */
function seriesPanels(results: ScenarioResult[], body: string[], y: number, width: number): number {
  for (const r of results) {
    for (const ser of r.series ?? []) {
      if (!ser.points.length) continue;
      const p = linePanel(y, ser.title, ser.points, width);
      body.push(p.svg); y += p.height + 10;
    }
  }
  return y;
}

/**
 * The time series of one scenario as a chart of its own (the run's files
 * get one per scenario that has series, beside the report's SVG); null without series.
 */
export function renderSeriesSvg(rep: Report, r: ScenarioResult): string | null {
  if (!r.series?.some((s) => s.points.length)) return null;
  const W = 1000;
  const body = [`<text x="10" y="26" class="title">${xmlEsc(r.title)}</text>`];
  return svgDocument(rep, body, seriesPanels([r], body, 36, W), W);
}

/** The SVG around panels that end at y: the run's line at the foot, one style sheet. */
function svgDocument(rep: Report, body: string[], y: number, W: number): string {
  body.push(`<text x="10" y="${y + 4}" class="sub">${xmlEsc(`${rep.startedAt} · ${rep.machine.cores} · ${rep.machine.kernel} · ${rep.quick ? 'quick mode' : 'default sizes'}`)}</text>`);
  y += 16;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" viewBox="0 0 ${W} ${y}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
<style>
.title { font-size: 16px; font-weight: bold; fill: #222; }
.sub { font-size: 11px; fill: #666; }
.group { font-size: 12px; font-weight: bold; fill: #333; }
.label { font-size: 12px; fill: #222; }
.value { font-size: 11px; fill: #333; }
.axis { font-size: 10px; fill: #777; }
.grid { stroke: #ddd; stroke-width: 1; }
.whisker { stroke: #222; stroke-width: 1.2; }
</style>
<rect width="100%" height="100%" fill="#fff"/>
${body.join('\n')}
</svg>
`;
}
