// Metric names used by the PromQL in deploy/ (alert rules, dashboard) and the
// names a /metrics exposition carries, so tests can check one against the other.
import fs from 'node:fs';
import path from 'node:path';

export const DEPLOY = path.join(__dirname, '..', '..', '..', 'deploy');

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'atan2', 'inf', 'nan']);

/**
 * Metric names in a PromQL expression: identifiers that are not functions,
 * keywords, label names or values, durations or Grafana variables. Not a full
 * parser; enough for the expressions halfopen ships, and tested on those shapes.
 */
export function metricNames(expr: string): string[] {
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // strings (label values)
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ') // Grafana variables ($__rate_interval, ${instance})
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // label lists
  const names = new Set<string>();
  for (const m of s.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const after = s.slice(m.index! + m[0].length);
    if (/^\s*\(/.test(after)) continue; // a function call
    const before = s.slice(0, m.index!);
    if (/[0-9.]$/.test(before)) continue; // the exponent or unit of a number (1e3, 5m)
    if (KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names].sort();
}

/** Every PromQL expression of the dashboard: panel targets and query variables. */
export function dashboardExprs(dash: any): string[] {
  const out: string[] = [];
  const panels = (ps: any[] = []): void => {
    for (const p of ps) {
      for (const t of p.targets ?? []) if (t.expr) out.push(t.expr);
      panels(p.panels);
    }
  };
  panels(dash.panels);
  for (const v of dash.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    // label_values(METRIC, label) / query_result(EXPR)
    const m = /^\s*label_values\(\s*(.*?)\s*,\s*\w+\s*\)\s*$/.exec(q) ?? /^\s*query_result\((.*)\)\s*$/.exec(q);
    if (m) out.push(m[1]);
  }
  return out;
}

/** Every alert and recording rule expression of a rules file (YAML parsed by the caller). */
export function ruleExprs(rules: any): string[] {
  return rules.groups.flatMap((g: any) => g.rules.map((r: any) => String(r.expr)));
}

/** Names Prometheus itself makes (not halfopen's): up and the scrape_* series. */
export const SYNTHETIC = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);

/** Sample names in a text exposition (histograms as their _bucket/_sum/_count series). */
export function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]/.exec(line);
    if (m) names.add(m[1]);
  }
  return names;
}

export function loadDashboard(): any {
  return JSON.parse(fs.readFileSync(path.join(DEPLOY, 'grafana', 'halfopen.json'), 'utf8'));
}

/** Names used by deploy/ that `exposed` lacks, each with where it is used. */
export function missingNames(exposed: Set<string>, rules: any, dash: any): string[] {
  const missing: string[] = [];
  for (const [where, exprs] of [['rules', ruleExprs(rules)], ['dashboard', dashboardExprs(dash)]] as const) {
    for (const e of exprs) for (const n of metricNames(e)) if (!SYNTHETIC.has(n) && !exposed.has(n)) missing.push(`${n} (${where}: ${e.replace(/\s+/g, ' ').trim()})`);
  }
  return missing;
}
