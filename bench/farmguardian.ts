// A farmguardian round: ZEVENET/SKUDONET's farmguardian checks a farm's
// backends one after another, each through Perl backticks (so /bin/sh) with
// an alarm on the timeout, HOST and PORT substituted into the command line,
// exit 0 = up. A round therefore costs the sum of every check's whole-process
// time. Here a Perl loop of that shape runs over 200 backends (190 open,
// 5 closed, 5 dropped) with `-t 1` (nmap: `--host-timeout 1s`), once per check command: the native
// check_tcp_half_open, the Node `halfopen check`, the nmap wrapper and
// check_tcp. Each loop runs two rounds; right after a backend's check in the
// first round the fleet starts dropping its traffic, and the time until the
// loop marks it down is reported (a failure just after a check is seen one
// round later: this is the worst case, before farmguardian's interval).
//
// A scenario of `npm run bench` (farmguardianScenario).
import fs from 'node:fs';
import path from 'node:path';
import { Fleet } from '../src/fleet/fleet';
import { farmguardianLoop } from '../src/fleet/farmguardian-loop';
import { BenchContext, Column, MAIN, ROOT, Scenario, ScenarioResult, have } from './lib';

const NATIVE = path.join(ROOT, 'native/plugin/build/check_tcp_half_open');
const CHECK_TCP = '/usr/lib/nagios/plugins/check_tcp';
const TIMEOUT_S = 1;
/** farmguardian's own alarm around each command (whole seconds, as Perl's alarm). */
const ALARM_S = 2;
/** The backend the fleet starts dropping mid-run. */
const DROP_INDEX = 20;

interface Backend { host: string; port: number; kind: 'open' | 'closed' | 'dropped'; truth: 'up' | 'down' }

function backends(quick: boolean): Backend[] {
  const open = quick ? 38 : 190, closed = quick ? 1 : 5, dropped = quick ? 1 : 5;
  const out: Backend[] = [];
  for (let i = 1; i <= open; i++) out.push({ host: `198.18.0.${i}`, port: 80, kind: 'open', truth: 'up' });
  for (let i = 0; i < closed; i++) out.push({ host: `198.18.0.${191 + i}`, port: 81, kind: 'closed', truth: 'down' });
  for (let i = 0; i < dropped; i++) out.push({ host: `198.18.0.${201 + i}`, port: 80, kind: 'dropped', truth: 'down' });
  return out;
}

interface Cmd { name: string; settings: string; template: string }
interface Outcome {
  roundS: number[]; detectS: number; correct: number; total: number;
  /** Round 1: whole-process seconds of each check, in list order (backticks to exit, or to the alarm). */
  checkS: number[];
}

const COLUMNS: Column[] = [
  { key: 'roundS', label: 'round s', digits: 2, ratio: 'lower-is-better' },
  { key: 'perCheckMs', label: 'ms per open backend', digits: 1, ratio: 'lower-is-better' },
  { key: 'droppedCheckS', label: 'dropped backend check s', digits: 2 },
  { key: 'detectS', label: 'dropped mid-run → down, s', digits: 2, ratio: 'lower-is-better' },
  { key: 'correct', label: 'verdicts right (of round 1)', digits: 0 },
];

/** Runs farmguardian's loop (src/fleet/farmguardian-loop.ts) for one command; drops DROP_INDEX after its first check. */
async function runLoop(fleet: Fleet, cmd: Cmd, list: Backend[]): Promise<Outcome> {
  let correct = 0, droppedAt = 0, detectS = NaN;
  const checkS: number[] = [];
  const drop = list[DROP_INDEX];
  try {
    const r = await farmguardianLoop(fleet, {
      template: cmd.template, backends: list, rounds: 2, alarmS: ALARM_S, limitMs: 10 * 60_000,
      onCheck: (c) => {
        const verdict = c.code === 0 ? 'up' : 'down';
        if (c.round === 1 && verdict === list[c.i].truth) correct++;
        if (c.round === 1) checkS[c.i] = c.ms / 1000;
        if (c.round === 1 && c.i === DROP_INDEX) {
          fleet.exec('fleet', 'nft', ['add', 'table', 'inet', 'ho_fg_drop']);
          fleet.exec('fleet', 'nft', ['add', 'chain', 'inet', 'ho_fg_drop', 'input', '{ type filter hook input priority -10; }']);
          fleet.exec('fleet', 'nft', ['add', 'rule', 'inet', 'ho_fg_drop', 'input', 'ip', 'daddr', drop.host, 'tcp', 'dport', String(drop.port), 'drop']);
          droppedAt = Date.now() / 1000;
        }
        if (c.round === 2 && c.i === DROP_INDEX && verdict === 'down' && droppedAt) detectS = Date.now() / 1000 - droppedAt;
      },
    });
    return { roundS: r.roundS, detectS, correct, total: list.length, checkS };
  } catch (err) {
    throw new Error(`${cmd.name}: ${(err as Error).message}`);
  } finally {
    try { fleet.exec('fleet', 'nft', ['delete', 'table', 'inet', 'ho_fg_drop']); } catch { /* not created */ }
  }
}

export const farmguardianScenario: Scenario = async (ctx: BenchContext): Promise<ScenarioResult> => {
  if (process.getuid?.() !== 0) throw new Error('the farmguardian scenario needs root (namespaces, raw sockets)');
  if (!have('perl')) throw new Error('needs perl');
  if (!fs.existsSync(NATIVE)) throw new Error(`${NATIVE} is not built (bash scripts/build.sh)`);
  const list = backends(ctx.quick);
  const fleet = await Fleet.create({ tag: 'fgbench', v4: '198.18.0.0/24', open: [80], drop: ['198.18.0.200/29'] });
  const t = String(TIMEOUT_S);
  const cmds: Cmd[] = [
    { name: 'check_tcp_half_open (native)', settings: `check_tcp_half_open -H HOST -p PORT -t ${t}`, template: `${NATIVE} -H HOST -p PORT -t ${t}` },
    { name: 'halfopen check (Node)', settings: `halfopen check -H HOST -p PORT -t ${t}`, template: `${process.execPath} ${MAIN} check -H HOST -p PORT -t ${t}` },
  ];
  if (have('nmap'))
    cmds.push({
      name: 'nmap wrapper',
      // --host-timeout: the same 1 s budget as the others' -t 1 (without it a dropped backend runs into the 2 s alarm).
      settings: `nmap -n -sS --host-timeout ${t}s -p PORT HOST -e IF | grep open (the usual check_tcp_half_open script, with the same timeout)`,
      template: `nmap -n -sS --host-timeout ${t}s -p PORT HOST -e ${fleet.proberIf} | grep -q open`,
    });
  if (fs.existsSync(CHECK_TCP))
    cmds.push({ name: 'check_tcp', settings: `check_tcp -H HOST -p PORT -t ${t} (full connect: the service sees it)`, template: `${CHECK_TCP} -H HOST -p PORT -t ${t}` });
  const outcomes = new Map<string, Outcome>();
  const notes: string[] = [];
  try {
    for (const c of cmds) {
      ctx.log(`${c.name}: 2 rounds over ${list.length} backends`);
      const o = await runLoop(fleet, c, list);
      outcomes.set(c.name, o);
      ctx.log(`${c.name}: rounds ${o.roundS.map((s) => s.toFixed(2)).join(', ')} s; dropped backend down after ${o.detectS.toFixed(2)} s; ${o.correct}/${o.total} right`);
    }
  } finally {
    fleet.remove();
  }
  const count = (k: Backend['kind']) => list.filter((b) => b.kind === k).length;
  const droppedTimes = (o: Outcome) => list.map((b, i) => (b.kind === 'dropped' ? o.checkS[i] : NaN)).filter(Number.isFinite);
  const droppedCost = (o: Outcome) => droppedTimes(o).reduce((a, b) => a + b, 0);
  const droppedMedian = (o: Outcome) => { const xs = droppedTimes(o).sort((a, b) => a - b); return xs.length ? xs[Math.floor((xs.length - 1) / 2)] : NaN; };
  const silent = count('dropped');
  notes.push(`${list.length} backends (${count('open')} open, ${count('closed')} closed, ${silent} dropped), one after another through Perl backticks (/bin/sh) under alarm ${ALARM_S}, HOST/PORT substituted, exit 0 = up, as farmguardian runs its checks; every check with -t ${TIMEOUT_S}. No interval between the two rounds (farmguardian sleeps its interval there).`);
  notes.push(`"ms per open backend" is (round − what this tool's own ${silent} dropped-backend checks took, each timed in the loop) ÷ ${list.length - silent}: roughly one check's whole-process time. "dropped backend check s" is the median time one check of a dropped backend took (its timeout, plus start-up, or the ${ALARM_S} s alarm for a tool that overruns).`);
  notes.push('Every tool has the same 1 s budget: `-t 1` for the plugins, `--host-timeout 1s` for the nmap wrapper.');
  notes.push(`Mid-run drop: right after backend #${DROP_INDEX}'s check in round 1 the fleet starts dropping its packets; the column is the time until round 2 marks it down, i.e. about one round: the worst case, to which farmguardian adds its interval.`);
  notes.push('The machine has 2 cores shared with other work: round times move by several per cent between runs.');
  return {
    id: 'farmguardian',
    title: `farmguardian round: ${list.length} backends checked one after another, -t ${TIMEOUT_S}`,
    notes,
    columns: COLUMNS,
    baseline: 'check_tcp_half_open (native)',
    rows: cmds.map((c) => {
      const o = outcomes.get(c.name)!;
      const r1 = o.roundS[0];
      return {
        tool: c.name,
        settings: c.settings,
        runs: [{ roundS: r1, perCheckMs: ((r1 - droppedCost(o)) / (list.length - silent)) * 1000, droppedCheckS: droppedMedian(o), detectS: o.detectS, correct: o.correct }],
      };
    }),
  };
};
