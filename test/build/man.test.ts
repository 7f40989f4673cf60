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

  // Independent of the option objects: the help is what the programs print when
  // run, the page is what groff renders, and each is read as text.
  test('the rendered pages hold every flag, and every option line, that the running programs\' --help prints', { skip: !has('groff') && 'groff is not installed (apt-get install groff-base)' }, () => {
    const render = (p: string) => {
      const r = spawnSync('groff', ['-man', '-Tascii', '-P-cbou', '-rHY=0', '-rLL=400n', path.join(MAN, p)], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.replace(/\s+/g, ' ');
    };
    const run = (argv: string[]) => {
      const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
      assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    /** Option lines of a help text: "  -x, --long ARG   description", continuation lines joined. */
    const optionLines = (help: string) => {
      const out: Array<{ flags: string[]; text: string }> = [];
      for (const line of help.split('\n')) {
        const m = /^ {2,}(-[^ ].*?)(?: {2,}(.*))?$/.exec(line);
        if (m) out.push({ flags: [...m[1].matchAll(/(?:^|[\s,|[])(--?[A-Za-z0-9][\w-]*)/g)].map((x) => x[1]), text: m[2] ?? '' });
        else if (/^ {8,}\S/.test(line) && out.length) out[out.length - 1].text += ' ' + line.trim();
      }
      return out;
    };
    const word = (text: string, flag: string) => new RegExp(`(^|[^\\w-])${flag.replace(/[-]/g, '\\-')}(?![\\w-])`).test(text);
    const main = path.join(root, 'dist', 'src', 'cli', 'main.js');
    const halfopen = render('halfopen.1');
    const commands = [...run([process.execPath, main, '--help']).split('Commands:')[1].matchAll(/^ {2}([a-z]+) /gm)].map((m) => m[1]).filter((c) => c !== 'help');
    assert.ok(commands.length >= 5, `commands in halfopen --help: ${commands.join(' ')}`);
    let flags = 0;
    for (const cmd of commands) {
      assert.ok(halfopen.includes(`halfopen ${cmd}`), `halfopen(1) has a section for ${cmd}`);
      for (const o of optionLines(run([process.execPath, main, cmd, '--help']))) {
        for (const f of o.flags) { flags++; assert.ok(word(halfopen, f), `halfopen(1) lists ${cmd} ${f} (from halfopen ${cmd} --help)`); }
      }
    }
    assert.ok(flags > 40, `${flags} flags read from the --help texts`);
    // The native plugin: every option line of its --help, flags and description, is in its page.
    const plugin = path.join(root, 'native', 'plugin', 'build', 'check_tcp_half_open');
    assert.ok(fs.existsSync(plugin), `${plugin} is not built (bash scripts/build.sh)`);
    const page8 = render('check_tcp_half_open.8');
    const lines = optionLines(run([plugin, '--help']));
    assert.ok(lines.length >= 8, `${lines.length} option lines in check_tcp_half_open --help`);
    for (const o of lines) {
      for (const f of o.flags) assert.ok(word(page8, f), `check_tcp_half_open(8) lists ${f} (from check_tcp_half_open --help)`);
      assert.ok(page8.includes(o.text.replace(/\s+/g, ' ')), `check_tcp_half_open(8) says "${o.text}" for ${o.flags.join(', ')}`);
    }
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
