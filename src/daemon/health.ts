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

/** The highest health level: rise + fall - 1. */
export const healthMax = (rise: number, fall: number): number => rise + fall - 1;

/** The state of health level h. */
export const healthState = (h: number, rise: number): HealthState => (h >= rise ? 'up' : 'down');

/** Health level after one result: the arithmetic above, shared by Health and the scheduler's backend store. */
export function healthAfter(h: number, ok: boolean, rise: number, fall: number): number {
  const max = healthMax(rise, fall);
  if (ok) return h >= rise || h + 1 >= rise ? max : h + 1;
  if (h >= rise) return h - 1 < rise ? 0 : h - 1;
  return 0;
}

/** The streak after one result: successes positive, failures negative. */
export const streakAfter = (streak: number, ok: boolean): number => (ok ? Math.max(0, streak) + 1 : Math.min(0, streak) - 1);

/** Somewhere between fully up and fully down: checks go at fastinter. */
export const transitioning = (h: number, rise: number, fall: number): boolean => h > 0 && h < healthMax(rise, fall);

/** Milliseconds until the next check at health level h, per HAProxy's inter/fastinter/downinter. */
export function intervalAt(h: number, rise: number, fall: number, t: HealthTimers): number {
  if (transitioning(h, rise, fall)) return t.fastinter;
  return h >= rise ? t.interval : t.downinter;
}

/** A saved health level put back within this rise/fall. */
export const clampHealth = (health: number, rise: number, fall: number): number => Math.max(0, Math.min(healthMax(rise, fall), Math.round(health)));

/** One backend's rise/fall as an object (the scheduler keeps the same numbers in its store: src/daemon/backend.ts). */
export class Health {
  readonly rise: number;
  readonly fall: number;
  private h: number;
  /** Consecutive successes (or failures, negative) of the latest run. */
  private streak = 0;

  constructor(rise: number, fall: number, initial: HealthState = 'up') {
    this.rise = rise;
    this.fall = fall;
    this.h = initial === 'up' ? healthMax(rise, fall) : 0;
  }

  get state(): HealthState { return healthState(this.h, this.rise); }
  get health(): number { return this.h; }
  get successes(): number { return Math.max(0, this.streak); }
  get failures(): number { return Math.max(0, -this.streak); }

  /** The streak, signed: successes positive, failures negative (for the state file). */
  get streakValue(): number { return this.streak; }

  /** Puts back a saved health level and streak (clamped to this rise/fall). */
  restore(health: number, streak: number): void {
    this.h = clampHealth(health, this.rise, this.fall);
    this.streak = Math.round(streak);
  }

  /** Somewhere between fully up and fully down: checks go at fastinter. */
  get transitioning(): boolean { return transitioning(this.h, this.rise, this.fall); }

  /** Records one check result; returns the transition it caused, if any. */
  record(ok: boolean): Transition | null {
    this.streak = streakAfter(this.streak, ok);
    const before = this.state;
    this.h = healthAfter(this.h, ok, this.rise, this.fall);
    const after = this.state;
    return after === before ? null : { from: before, to: after, consecutive: Math.abs(this.streak) };
  }

  /** Milliseconds until the next check, per HAProxy's inter/fastinter/downinter. */
  nextInterval(t: HealthTimers): number { return intervalAt(this.h, this.rise, this.fall, t); }
}
