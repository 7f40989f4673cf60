#!/usr/bin/env node
// Runs one test tier and fails it when it proved nothing:
//
//   node scripts/test-tier.js NAME -- CMD ARG…     e.g. test-tier.js bpf -- npm run test:bpf
//
// CMD's output passes through unchanged. node --test closes with a summary
// ("# tests N", "# pass N", "# skipped N" in TAP; "ℹ tests N" in the spec
// reporter); if CMD exits 0 but the summary says no test ran, or that every
// test of the tier was skipped (a privileged tier on a machine without the
// privileges, an image tier without its image), the tier fails. Individual
// skips are listed with their reasons: the known ones are per-fixture (the
// bpf tier's two IPv4 fixtures without a whole IPv4 header, for which the
// kernel's test run refuses to build an skb at the tc entry, EINVAL).
'use strict';
const { spawn } = require('node:child_process');

const [name, sep, ...cmd] = process.argv.slice(2);
if (!name || sep !== '--' || !cmd.length) {
  process.stderr.write('usage: node scripts/test-tier.js NAME -- CMD ARG…\n');
  process.exit(2);
}

const child = spawn(cmd[0], cmd.slice(1), { stdio: ['inherit', 'pipe', 'inherit'] });
const totals = { tests: 0, pass: 0, fail: 0, skipped: 0, summaries: 0 };
const skips = [];
let partial = '';
const scan = (line) => {
  const m = /^(?:#|ℹ) (tests|pass|fail|skipped) (\d+)$/.exec(line.trim());
  if (m) {
    totals[m[1]] += Number(m[2]);
    if (m[1] === 'tests') totals.summaries++;
    return;
  }
  // TAP: "ok 3 - name # SKIP reason"; spec: "﹣ name (1ms) # reason"
  const s = /^\s*ok \d+ - (.*) # SKIP\s*(.*)$/.exec(line) ?? /^\s*﹣ (.*?) \([\d.]+m?s\) # (.*)$/.exec(line);
  if (s) skips.push(`${s[1]}: ${s[2] || '(no reason given)'}`);
};
child.stdout.on('data', (d) => {
  process.stdout.write(d);
  const text = partial + d;
  const lines = text.split('\n');
  partial = lines.pop();
  for (const l of lines) scan(l);
});
child.on('error', (e) => { process.stderr.write(`tier ${name}: ${e.message}\n`); process.exit(1); });
child.on('close', (code, signal) => {
  if (partial) scan(partial);
  const say = (m) => process.stderr.write(`tier ${name}: ${m}\n`);
  if (skips.length) say(`${skips.length} skipped:\n  ${skips.join('\n  ')}`);
  if (code !== 0) { say(`failed (exit ${code ?? signal})`); process.exit(code || 1); }
  if (!totals.summaries || totals.tests === 0) { say('ran no test: a tier that proves nothing fails'); process.exit(1); }
  if (totals.skipped >= totals.tests) { say(`every one of its ${totals.tests} tests was skipped: the tier did not run, so it fails`); process.exit(1); }
  say(`${totals.pass} passed, ${totals.fail} failed, ${totals.skipped} skipped`);
});
