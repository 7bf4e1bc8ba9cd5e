/**
 * Adaptive concurrency (`maxConcurrency: "auto"`): the slot count of a
 * handler follows the model server's real capacity, learned from the time
 * to first byte of its answers and, where the engine reports it, its own
 * waiting queue. Pure and deterministic: no clock, no timer; the request
 * path feeds it one sample per answer.
 *
 * The rule (a gradient rule in the style of Netflix's concurrency-limits
 * `GradientLimit`, with a BBR-like probe for the baseline):
 *
 * - `baseline` is the lowest first-byte time seen since the last probe:
 *   what one request costs when the engine is not saturated.
 * - `recent` is an average of the last few samples (EWMA, `alpha` 0.2;
 *   one sample counts at most twice the average, so a pause of the event
 *   loop does not read as overload).
 * - gradient `g = tolerance × baseline / recent`, bounded to [0.5, 1.5];
 *   the limit moves half-way to `limit × g` per round trip (each of the
 *   `slots` answers of one round trip moves it `1 / slots` of that). Below
 *   the engine's knee first bytes stay near the baseline, so
 *   `g ≈ tolerance > 1` and the limit grows by up to 25% per round trip;
 *   past the knee the first
 *   byte grows with the requests in flight and `g` falls below 1. It
 *   settles where the first byte is `tolerance` × the baseline: for an
 *   engine whose latency grows in proportion to the requests beyond its
 *   knee `K`, at about `tolerance × K` (1.3–1.5 K in the simulation,
 *   whose answers vary by ±10%).
 * - No growth while fewer than half the slots are in use (the traffic says
 *   nothing about more), nor while the engine reports requests waiting in
 *   its own queue; a report of `waiting > 0` also cuts the limit to the
 *   share the engine runs (`limit × running / (running + waiting)`).
 * - An overload answer (the model's 429/503, a first-byte timeout) cuts
 *   the limit by 20% (multiplicative decrease).
 * - The baseline only goes down between probes; a **probe** measures it
 *   again: two round trips after the start, every `probeEvery` answers,
 *   and whenever the limit fell below half of what it was at the last
 *   probe (the engine may have become slower rather than saturated). The
 *   slot count drops to half for a few answers sent at that concurrency,
 *   and their lowest first byte becomes the new baseline. If halving the
 *   slots (nearly) halved the first byte, the engine was saturated even
 *   at half: the limit goes on from the probe's count and probes again two
 *   round trips later. Without probes the baseline could only drift
 *   (Gradient2's long-term average drifts up under steady overload). A
 *   probe costs about 3% of the throughput at the defaults (half the slots
 *   for about 1.2 × slots of every 500 answers, in the simulation).
 *
 * Convergence, stated for the default settings and checked by
 * `tests/concurrency_limit_test.ts` on a simulated engine (processor
 * sharing, full speed up to `K` requests at once): after the engine's knee
 * changes, it becomes faster, or 2× slower or more, the limit is within
 * [K, 2K] for good within {@linkcode CONVERGENCE_SAMPLES} answers (the
 * simulation needs 50–190), probes aside; after a smaller slowdown, within
 * the next periodic probe plus that (the simulation: 433 for 1.4× slower).
 * The slot count is always an integer in [min, max].
 *
 * @module
 */

/** Settings of {@linkcode ConcurrencyLimit}. */
export interface ConcurrencyLimitOptions {
  /** Fewest slots. */
  min: number;
  /** Most slots; the limit never exceeds it. */
  max: number;
  /** Slots at start. @default {min(max, max(min, 8))} */
  initial?: number;
  /** First byte allowed over the baseline, as a factor (> 1). @default {1.5} */
  tolerance?: number;
  /** Samples between probes of the baseline. @default {500} */
  probeEvery?: number;
}

/**
 * Samples (answers) within which the limit reaches [K, 2K] of a new knee
 * K after the engine changes, with the default settings (see the module
 * note; `tests/concurrency_limit_test.ts` checks it on a simulated engine).
 */
export const CONVERGENCE_SAMPLES = 300;

/** The rule's fixed constants (the module note says what each does). */
const TUNING = {
  /** Weight of a new first byte in the recent average. */
  alpha: 0.2,
  /** Share of the gradient's step taken per round trip. */
  smoothing: 0.5,
  /** Bounds of one step's factor. */
  minGradient: 0.5,
  maxGradient: 1.5,
  /** Cut on an overload answer (429, 503, first-byte timeout). */
  dropFactor: 0.8,
  /** Fewest answers a probe measures. */
  minProbeSamples: 3,
  /**
   * First byte before a probe over at it, relative to the slot ratio, that
   * says the engine was saturated at the probe's slots too.
   */
  saturated: 0.85,
} as const;

/**
 * The adaptive slot count of one handler.
 *
 * @example
 * ```ts
 * import { ConcurrencyLimit } from "./concurrency_limit.ts";
 * const limit = new ConcurrencyLimit({ min: 1, max: 32, initial: 4 });
 * limit.sample(100, 4); // a 100 ms first byte with 4 slots in use
 * limit.slots; // 4 or a little more
 * ```
 */
export class ConcurrencyLimit {
  readonly #min: number;
  readonly #max: number;
  readonly #tolerance: number;
  readonly #probeEvery: number;
  #limit: number;
  #baseline = Infinity;
  #recent = NaN;
  #sinceProbe = 0;
  #limitAtProbe: number;
  #engineQueued = false;
  // While probing: the slots of the probe and what it measured.
  #probeSlots = 0;
  #probeFrom = 0;
  #probeLeft = 0;
  #probeMin = Infinity;

  /** Checks the settings; throws a `RangeError` naming the bad one. */
  constructor(options: ConcurrencyLimitOptions) {
    const { min, max } = options;
    if (!Number.isInteger(min) || min < 1) {
      throw new RangeError(`min must be a positive integer: got ${min}`);
    }
    if (!Number.isInteger(max) || max < min) {
      throw new RangeError(`max must be an integer >= min: got ${max}`);
    }
    const initial = options.initial ?? Math.min(max, Math.max(min, 8));
    if (!(initial >= min && initial <= max)) {
      throw new RangeError(`initial must be in [min, max]: got ${initial}`);
    }
    const tolerance = options.tolerance ?? 1.5;
    if (!(tolerance > 1)) {
      throw new RangeError(`tolerance must be above 1: got ${tolerance}`);
    }
    this.#min = min;
    this.#max = max;
    this.#tolerance = tolerance;
    this.#probeEvery = options.probeEvery ?? 500;
    this.#limit = initial;
    this.#limitAtProbe = initial;
    // The first probe comes after two round trips: a start above the knee
    // would otherwise take its overloaded first bytes for the baseline.
    this.#sinceProbe = Math.max(0, this.#probeEvery - 2 * initial);
  }

  /** The slot count now: an integer in [min, max] (halved while probing). */
  get slots(): number {
    if (this.#probeLeft > 0) return this.#probeSlots;
    return clamp(Math.round(this.#limit), this.#min, this.#max);
  }

  /** The unrounded limit (for tests and `/status`). */
  get limit(): number {
    return this.#limit;
  }

  /** The first byte the limit compares against, ms (`Infinity` before a sample). */
  get baseline(): number {
    return this.#baseline;
  }

  /** Whether a probe of the baseline is under way. */
  get probing(): boolean {
    return this.#probeLeft > 0;
  }

  /** Fewest and most slots. */
  get bounds(): { min: number; max: number } {
    return { min: this.#min, max: this.#max };
  }

  /**
   * One answer's time to first byte (ms), with the slots in use when it
   * was sent (itself included). Returns the new slot count.
   */
  sample(firstByteMs: number, inFlightAtSend: number): number {
    if (!(firstByteMs >= 0) || !Number.isFinite(firstByteMs)) {
      return this.slots;
    }
    if (this.#probeLeft > 0) {
      return this.#probeSample(firstByteMs, inFlightAtSend);
    }
    if (firstByteMs < this.#baseline) this.#baseline = firstByteMs;
    // One answer counts at most twice the average: a pause of the event
    // loop or a GC makes a few answers slow at once, not the engine.
    this.#recent = Number.isNaN(this.#recent) ? firstByteMs : this.#recent +
      TUNING.alpha * (Math.min(firstByteMs, 2 * this.#recent) - this.#recent);
    let g = this.#recent > 0
      ? this.#tolerance * this.#baseline / this.#recent
      : TUNING.maxGradient;
    g = clamp(g, TUNING.minGradient, TUNING.maxGradient);
    // Growth needs evidence: slots in use, and an engine not queueing.
    if (g > 1 && (inFlightAtSend < this.#limit / 2 || this.#engineQueued)) {
      g = 1;
    }
    // Half-way per round trip (`slots` answers), not per answer: the
    // answers of one round trip all describe the same limit.
    this.#set(this.#limit * (1 + TUNING.smoothing * (g - 1) / this.slots));
    this.#sinceProbe++;
    if (
      this.#sinceProbe >= this.#probeEvery ||
      this.#limit < this.#limitAtProbe / 2
    ) this.#startProbe();
    return this.slots;
  }

  /** An overload answer (model 429/503, first-byte timeout): cut by 20%. */
  drop(): number {
    if (this.#probeLeft === 0) this.#set(this.#limit * TUNING.dropFactor);
    return this.slots;
  }

  /**
   * The engine's own figures (a metrics scrape): requests it runs and
   * requests waiting in its queue. Returns the new slot count.
   */
  engine(running: number | undefined, waiting: number | undefined): number {
    // Unknown figures (a failed scrape) block nothing.
    this.#engineQueued = waiting !== undefined && waiting > 0;
    if (!this.#engineQueued || waiting === undefined) return this.slots;
    if (running !== undefined && running >= 0) {
      this.#set(
        Math.min(this.#limit, this.#limit * running / (running + waiting)),
      );
    }
    return this.slots;
  }

  #set(limit: number): void {
    this.#limit = clamp(limit, this.#min, this.#max);
  }

  #startProbe(): void {
    this.#sinceProbe = 0;
    this.#probeFrom = this.slots;
    this.#probeSlots = Math.max(this.#min, Math.floor(this.slots / 2));
    this.#probeLeft = Math.max(TUNING.minProbeSamples, this.#probeSlots);
    this.#probeMin = Infinity;
  }

  // Only answers sent at the probe's concurrency measure the baseline.
  #probeSample(firstByteMs: number, inFlightAtSend: number): number {
    if (inFlightAtSend > this.#probeSlots) return this.#probeSlots;
    this.#probeMin = Math.min(this.#probeMin, firstByteMs);
    if (--this.#probeLeft > 0) return this.#probeSlots;
    this.#baseline = this.#probeMin;
    // Half the slots, (nearly) half the first byte: the engine is
    // saturated even at the probe's count. Go on from there and probe
    // again soon, instead of settling at tolerance × an overloaded baseline.
    const slotsRatio = this.#probeFrom / this.#probeSlots;
    if (
      slotsRatio > 1 &&
      this.#recent / this.#probeMin >= TUNING.saturated * slotsRatio
    ) {
      this.#set(this.#probeSlots);
      this.#sinceProbe = Math.max(0, this.#probeEvery - 2 * this.#probeSlots);
    }
    this.#limitAtProbe = this.#limit;
    // The average restarts too: it may hold answers from before (a cold
    // start's first requests open connections).
    this.#recent = NaN;
    return this.slots;
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
