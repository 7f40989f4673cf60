// A new backend set for the monitor, worked out in steps. Comparing 100,000
// backends with the running ones takes ~70-140 ms; done in one piece it holds
// the event loop, and with it every check due meanwhile. An ApplyPlan does
// that comparison in steps of at most ~APPLY_STEP_MS, the scheduler ticking
// between them, and then commits only what differs: new, changed and removed
// backends. The unchanged ones keep their row, slots, checks in flight and
// agenda entry untouched. Monitor.apply() is the same plan run to its end at
// once, so there is one implementation of what a reload does.
//
// A plan reads the running set between its steps and writes nothing to it
// until the commit. Anything that changes the running set meanwhile (a name
// resolving to a new address, a learned backend, another commit) moves the
// monitor's generation on, and the plan starts its comparison over; after
// MAX_RESTARTS it does the rest in one step, so it always ends.
import { BackendConfig } from './config';
import { Backend, sameBackend, sameConfig } from './backend';
import type { BackendStore } from './backend-store';

/** One backend of a new set: its config and what its host resolved to. */
export interface ApplyEntry { cfg: BackendConfig; addr: bigint | null; unresolved?: string }

/** Longest step of a plan, ms: a tick may wait this long behind it. */
export const APPLY_STEP_MS = 8;

/** Comparisons started over because the running set changed, before the rest is done in one step. */
const MAX_RESTARTS = 2;

/** Entries compared between two looks at the clock. */
const CLOCK_EVERY = 512;

/** What an entry of the new set is to the running one. */
export enum Change {
  /** The same config and address: left exactly as it is. */
  Same = 0,
  /** The same check of the same name (host, port, rise, fall): a new view of its row, history kept. */
  Changed = 1,
  /** No backend of that name: a new row. */
  Added = 2,
  /** A backend of that name that checks something else: dropped, and a new row. */
  Replaced = 3,
}

/** What a plan reads of the monitor, and how it hands the result back. */
export interface RunningSet {
  backends(): ReadonlyMap<string, Backend>;
  /** Moves on with every change to the set (its views, configs or addresses). */
  generation(): number;
  readonly rows: BackendStore;
  commitPlan(plan: ApplyPlan, now: number): void;
}

const enum Phase { Compare, Removed, Grow, Ready, Done }

const nextTurn = () => new Promise<void>((r) => setImmediate(r));

export class ApplyPlan {
  /** The new set by name, in list order: the running view for each kept backend, null where the commit makes one. */
  next = new Map<string, Backend | null>();
  /** Per list entry: a Change. */
  kind: Uint8Array;
  /** List indices of the entries that are not Same, ascending. */
  changes: number[] = [];
  /** Running backends whose name is not in the list. */
  removed: Backend[] = [];
  /** Rows the commit hands out (Added, Replaced). */
  added = 0;
  /** The shortest of interval / 10 and timeout / 5 over the list (for the tick). */
  shortest = Infinity;
  private phase = Phase.Compare;
  private at = 0;
  private generation: number;
  private restarts = 0;
  private rest: Iterator<Backend> | null = null;
  private rows = 0;
  /** Entries compared between two looks at the clock (tests make it small to take many steps). */
  chunk = CLOCK_EVERY;

  /** The new set being compared (the commit installs this one). */
  list: readonly ApplyEntry[];

  /**
   * `list`: the new set, or what makes it: then it is made again whenever the
   * comparison starts over, so a backend added to the running set meanwhile
   * (a learned one) can be in it.
   */
  constructor(private readonly running: RunningSet, private readonly source: readonly ApplyEntry[] | (() => readonly ApplyEntry[]), readonly now: number) {
    this.list = typeof source === 'function' ? source() : source;
    this.kind = new Uint8Array(this.list.length);
    this.generation = running.generation();
  }

  /** Whether every step is done (commit() may follow). */
  get ready(): boolean { return this.phase === Phase.Ready; }

  /** Compares from the start against the running set as it is now. */
  private restart(): void {
    if (typeof this.source === 'function') this.list = this.source();
    this.next = new Map();
    this.kind = new Uint8Array(this.list.length);
    this.changes = [];
    this.removed = [];
    this.added = 0;
    this.shortest = Infinity;
    this.phase = Phase.Compare;
    this.at = 0;
    this.rest = null;
    this.generation = this.running.generation();
    this.restarts++;
  }

  /**
   * Does the next piece of work, until `budgetMs` has passed (at least a
   * little of it); true when the plan is ready to commit. Throws on a name
   * listed twice.
   */
  step(budgetMs = APPLY_STEP_MS): boolean {
    if (this.phase === Phase.Done) throw new Error('apply plan: already committed');
    if (this.generation !== this.running.generation()) this.restart();
    const deadline = this.restarts > MAX_RESTARTS ? Infinity : performance.now() + budgetMs;
    if (this.phase === Phase.Compare) {
      if (!this.compare(deadline)) return false;
      this.phase = Phase.Removed;
    }
    if (this.phase === Phase.Removed) {
      if (!this.findRemoved(deadline)) return false;
      // Rows of removed and replaced backends are free again before new ones are handed out.
      let freed = this.removed.length;
      for (const i of this.changes) if (this.kind[i] === Change.Replaced) freed++;
      this.rows = this.running.rows.rowsFor(Math.max(0, this.added - freed));
      this.phase = Phase.Grow;
    }
    if (this.phase === Phase.Grow) {
      if (!this.running.rows.growStep(this.rows, deadline)) return false;
      this.phase = Phase.Ready;
    }
    return true;
  }

  private compare(deadline: number): boolean {
    const list = this.list, running = this.running.backends(), next = this.next, kind = this.kind;
    let shortest = this.shortest;
    for (let i = this.at; i < list.length; i++) {
      if ((i - this.at) % this.chunk === 0 && i > this.at && performance.now() >= deadline) {
        this.at = i;
        this.shortest = shortest;
        return false;
      }
      const { cfg, addr } = list[i];
      if (next.has(cfg.name)) throw new Error(`apply: backend ${cfg.name} is listed twice`);
      shortest = Math.min(shortest, cfg.interval / 10, cfg.timeout / 5);
      const old = running.get(cfg.name);
      if (old && old.addr === addr && (old.cfg === cfg || sameConfig(old.cfg, cfg))) {
        next.set(cfg.name, old);
        continue;
      }
      const k = !old ? Change.Added : sameBackend(old.cfg, cfg) ? Change.Changed : Change.Replaced;
      kind[i] = k;
      this.changes.push(i);
      if (k !== Change.Changed) this.added++;
      next.set(cfg.name, null);
    }
    this.at = list.length;
    this.shortest = shortest;
    return true;
  }

  private findRemoved(deadline: number): boolean {
    // Every running name is in the list when as many names matched as run.
    if (this.next.size - this.addedNames() === this.running.backends().size) return true;
    this.rest ??= this.running.backends().values();
    for (let n = 1; ; n++) {
      const r = this.rest.next();
      if (r.done) return true;
      if (!this.next.has(r.value.cfg.name)) this.removed.push(r.value);
      if (n % this.chunk === 0 && performance.now() >= deadline) return false;
    }
  }

  /** Names of the list that do not run now. */
  private addedNames(): number {
    let n = 0;
    for (const i of this.changes) if (this.kind[i] === Change.Added) n++;
    return n;
  }

  /** Installs the plan; every step must be done (ready). `now`: when new backends' schedules start. */
  commit(now = this.now): void {
    if (!this.ready) throw new Error('apply plan: commit before the last step');
    if (this.generation !== this.running.generation()) throw new Error('apply plan: the running set changed since the last step');
    this.running.commitPlan(this, now);
    this.phase = Phase.Done;
  }

  /** Every step at once, then the commit. */
  runNow(now = this.now): void {
    while (!this.step(Infinity));
    this.commit(now);
  }

  /**
   * The steps with a turn of the event loop between them, then the commit at
   * the time it happens. `superseded`: asked before each step; when it says
   * so, the plan stops uncommitted and run() resolves false.
   */
  async run(superseded: () => boolean = () => false): Promise<boolean> {
    for (;;) {
      if (superseded()) return false;
      if (this.step()) break;
      await nextTurn();
    }
    this.commit(Date.now());
    return true;
  }
}
