// HAProxy's health arithmetic for one backend. `health` runs from 0 to
// rise + fall - 1; the backend is up while health >= rise. From fully up it
// takes exactly `fall` consecutive failures to go down, and from fully down
// exactly `rise` consecutive successes to come up. A backend starts fully up
// (HAProxy's default) or fully down, so start-up never produces a flap.

export type HealthState = 'up' | 'down';

export interface HealthTimers {
  /** Check interval while stable, ms. */
  interval: number;
  /** Interval while moving between up and down (HAProxy fastinter), ms. */
  fastinter: number;
  /** Interval while fully down (HAProxy downinter), ms. */
  downinter: number;
}

export interface Transition {
  from: HealthState;
  to: HealthState;
  /** Consecutive results of the kind that caused the change. */
  consecutive: number;
}

export class Health {
  readonly rise: number;
  readonly fall: number;
  private h: number;
  /** Consecutive successes (or failures, negative) of the latest run. */
  private streak = 0;

  constructor(rise: number, fall: number, initial: HealthState = 'up') {
    this.rise = rise;
    this.fall = fall;
    this.h = initial === 'up' ? this.max : 0;
  }

  private get max(): number { return this.rise + this.fall - 1; }

  get state(): HealthState { return this.h >= this.rise ? 'up' : 'down'; }
  get health(): number { return this.h; }
  get successes(): number { return Math.max(0, this.streak); }
  get failures(): number { return Math.max(0, -this.streak); }

  /** The streak, signed: successes positive, failures negative (for the state file). */
  get streakValue(): number { return this.streak; }

  /** Puts back a saved health level and streak (clamped to this rise/fall). */
  restore(health: number, streak: number): void {
    this.h = Math.max(0, Math.min(this.max, Math.round(health)));
    this.streak = Math.round(streak);
  }

  /** Somewhere between fully up and fully down: checks go at fastinter. */
  get transitioning(): boolean { return this.h > 0 && this.h < this.max; }

  /** Records one check result; returns the transition it caused, if any. */
  record(ok: boolean): Transition | null {
    this.streak = ok ? Math.max(0, this.streak) + 1 : Math.min(0, this.streak) - 1;
    const before = this.state;
    if (ok) {
      if (before === 'up') this.h = this.max;
      else if (++this.h >= this.rise) this.h = this.max;
    } else if (before === 'up') {
      if (--this.h < this.rise) this.h = 0;
    } else {
      this.h = 0;
    }
    const after = this.state;
    return after === before ? null : { from: before, to: after, consecutive: Math.abs(this.streak) };
  }

  /** Milliseconds until the next check, per HAProxy's inter/fastinter/downinter. */
  nextInterval(t: HealthTimers): number {
    if (this.transitioning) return t.fastinter;
    return this.state === 'down' ? t.downinter : t.interval;
  }
}
