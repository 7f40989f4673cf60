// Man pages: man/halfopen.1 and man/check_tcp_half_open.8 are what
// scripts/gen-man.js makes today from commander's definitions and the native
// plugin's --help; halfopen(1) lists every flag --help lists; every flag the
// check's page lists is one the plugin's parser accepts; groff and man render
// both without a warning. Needs the build (the plugin), not privileges.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildProgram } from '../../src/cli/main';

const root = path.join(__dirname, '..', '..', '..');
const MAN = path.join(root, 'man');
const PAGES = ['halfopen.1', 'check_tcp_half_open.8'];
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
/** The page as text, roff escapes for hyphens undone. */
const page = (name: string) => fs.readFileSync(path.join(MAN, name), 'utf8').replace(/\\-/g, '-');
const PLUGIN = path.join(root, 'native', 'plugin', 'build', 'check_tcp_half_open');

/** The check's options as the page lists them: the .TP lines of OPTIONS, e.g. ["-H", "--hostname"] with "HOST". */
function pageOptions(text: string): Array<{ flags: string[]; value?: string }> {
  const section = text.slice(text.indexOf('.SH OPTIONS'), text.indexOf('.SH EXIT STATUS'));
  const out: Array<{ flags: string[]; value?: string }> = [];
  const lines = section.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '.TP') continue;
    const head = lines[i + 1];
    const flags = [...head.matchAll(/\\fB(-[^\\]+)\\fR/g)].map((m) => m[1]);
    const value = /\\fI([A-Z]+)\\fR/.exec(head)?.[1];
    out.push({ flags, value });
  }
  return out;
}

describe('man pages', () => {
  test('are up to date with the option definitions (npm run man regenerates them)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'halfopen-man-'));
    try {
      const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'gen-man.js'), dir], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      for (const p of PAGES) assert.equal(fs.readFileSync(path.join(MAN, p), 'utf8'), fs.readFileSync(path.join(dir, p), 'utf8'), `man/${p} drifted: run npm run man`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('halfopen(1) lists every subcommand and every flag that --help lists, with exit codes and examples', () => {
    const text = page('halfopen.1');
    const program = buildProgram();
    for (const cmd of program.commands) {
      assert.match(text, new RegExp(`^\\.SS \\\\fBhalfopen ${cmd.name()}\\\\fR`, 'm'), cmd.name());
      const help = cmd.helpInformation();
      for (const o of cmd.options) {
        for (const flag of [o.short, o.long].filter(Boolean) as string[]) {
          assert.ok(help.includes(flag), `--help of ${cmd.name()} lists ${flag}`);
          assert.ok(text.includes(`\\fB${flag}\\fR`), `halfopen(1) lists ${cmd.name()} ${flag}`);
        }
      }
    }
    for (const s of ['.SH EXIT STATUS', '.SH EXAMPLES', '.SH SYNOPSIS', '.SH ENVIRONMENT']) assert.ok(text.includes(s), s);
    const check = pageOptions(page('check_tcp_half_open.8'));
    for (const o of check) assert.ok(text.includes(`\\fB${o.flags[0]}\\fR`), o.flags[0]);
  });

  test('check_tcp_half_open(8) lists only flags the plugin accepts, and every flag its --help lists', () => {
    const opts = pageOptions(page('check_tcp_half_open.8'));
    assert.ok(opts.length >= 9, `options on the page: ${JSON.stringify(opts)}`);
    const help = spawnSync(PLUGIN, ['--help'], { encoding: 'utf8' }).stdout;
    for (const m of help.matchAll(/^ {2}(-\w), (--[\w-]+)|^ {6}(--[\w-]+)/gm)) {
      for (const flag of [m[1], m[2], m[3]].filter(Boolean)) assert.ok(opts.some((o) => o.flags.includes(flag)), `the page lists ${flag}`);
    }
    for (const o of opts) {
      for (const flag of o.flags) {
        // Port 0 is refused after the whole command line is read: an accepted flag ends
        // there (or in help/version), an unknown one as "unknown option". Nothing is sent.
        const v = o.value === 'HOST' ? ['198.18.0.2', '-p', '0'] : o.value === 'PORT' ? ['0', '198.18.0.1'] : o.value ? ['2', '198.18.0.1', '0'] : ['198.18.0.1', '0'];
        const r = spawnSync(PLUGIN, [flag, ...v], { encoding: 'utf8' });
        assert.doesNotMatch(r.stdout, /unknown option|needs a value|given twice/, `${flag} ${v.join(' ')}: ${r.stdout}`);
        assert.ok(r.status === 0 || /invalid port \\?"0\\?"/.test(r.stdout), `${flag} ${v.join(' ')}: ${r.stdout}`);
      }
    }
  });

  test('groff renders them without warnings', { skip: !has('groff') && 'groff is not installed (apt-get install groff-base)' }, () => {
    for (const p of PAGES) {
      const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', path.join(MAN, p)], { encoding: 'utf8' });
      assert.equal(r.status, 0);
      assert.equal(r.stderr, '', p);
    }
  });

  test('man -l renders them without warnings', { skip: !has('man') && 'man is not installed (apt-get install man-db)' }, () => {
    for (const p of PAGES) {
      const r = spawnSync('man', ['-l', '--warnings=w', path.join(MAN, p)], { encoding: 'utf8', env: { ...process.env, MANPAGER: 'cat', MANWIDTH: '80' } });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '', p);
      assert.match(r.stdout, /EXIT STATUS/);
    }
  });
});
