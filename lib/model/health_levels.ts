/**
 * The three levels of health, as `/ready`, `/status` and `/metrics` show
 * them: the worker is alive (it answers at all); the engine answers its
 * health URL (the last probe); generation works (the last generation
 * canary). Written by the probes and the canary, read at request time.
 *
 * @module
 */

/** How a level stands: `off` when it is not checked at all. */
export type LevelStatus = "ok" | "failing" | "unknown" | "off";

/** One level as shown. */
export interface LevelView {
  status: LevelStatus;
  /** Unix seconds of the last check; null before one. */
  checked_at: number | null;
  /** Checks failed in a row (0 when the last passed). */
  failures_in_a_row: number;
  /** Why the last check failed. */
  reason?: string;
}

/** All three levels. */
export interface HealthView {
  alive: "ok";
  engine: LevelView;
  generation: LevelView;
}

class Level {
  #status: LevelStatus;
  #at: number | null = null;
  #failures = 0;
  #reason: string | undefined;

  constructor(on: boolean) {
    this.#status = on ? "unknown" : "off";
  }

  get status(): LevelStatus {
    return this.#status;
  }

  pass(at: number): void {
    this.#status = "ok";
    this.#at = at;
    this.#failures = 0;
    this.#reason = undefined;
  }

  fail(at: number, reason: string): void {
    this.#status = "failing";
    this.#at = at;
    this.#failures++;
    this.#reason = reason;
  }

  view(): LevelView {
    return {
      status: this.#status,
      checked_at: this.#at === null ? null : this.#at / 1000,
      failures_in_a_row: this.#failures,
      ...(this.#reason ? { reason: this.#reason } : {}),
    };
  }
}

/**
 * The levels of one worker.
 *
 * @example
 * ```ts
 * import { HealthLevels } from "./health_levels.ts";
 * const levels = new HealthLevels({ engine: true, generation: false });
 * levels.engine({ ok: true });
 * levels.view().engine.status; // "ok"
 * ```
 */
export class HealthLevels {
  #engine: Level;
  #generation: Level;
  #now: () => number;

  /** Which levels are checked at all; `now` is a unix-ms clock. */
  constructor(
    on: { engine: boolean; generation: boolean },
    now: () => number = Date.now,
  ) {
    this.#engine = new Level(on.engine);
    this.#generation = new Level(on.generation);
    this.#now = now;
  }

  /** A health-URL probe's result. */
  engine(result: { ok: true } | { ok: false; reason: string }): void {
    if (result.ok) this.#engine.pass(this.#now());
    else this.#engine.fail(this.#now(), result.reason);
  }

  /** A generation canary's result (or a client answer standing for one). */
  generation(result: { ok: true } | { ok: false; reason: string }): void {
    if (result.ok) this.#generation.pass(this.#now());
    else this.#generation.fail(this.#now(), result.reason);
  }

  /** Status of each level, for `/metrics`. */
  statuses(): { engine: LevelStatus; generation: LevelStatus } {
    return {
      engine: this.#engine.status,
      generation: this.#generation.status,
    };
  }

  /** All three levels. */
  view(): HealthView {
    return {
      alive: "ok",
      engine: this.#engine.view(),
      generation: this.#generation.view(),
    };
  }
}
