/**
 * Live throughput estimate from served traffic, in the benchmark's units.
 *
 * @module
 */

/** Options for {@linkcode ThroughputEstimator}. */
export interface ThroughputEstimatorOptions {
  /**
   * Smoothing, in (0, 1]: the estimate averages over about `1 / alpha` mean
   * request durations of busy time (about `C / alpha` completions with `C`
   * requests in flight). Smaller is steadier and slower to follow changes.
   *
   * @default {0.1}
   */
  alpha?: number;
  /**
   * Completions needed before {@linkcode ThroughputEstimator.value} is defined.
   *
   * @default {20}
   */
  minSamples?: number;
}

// Disjoint busy segments kept to merge late-finishing long requests exactly.
const MAX_SEGMENTS = 64;

/**
 * Estimates throughput (workload units per second) the way the benchmark
 * measures it: completed units over **busy time**, the time during which at
 * least one request was in flight. With `C` requests always in flight this
 * is total units per second at concurrency `C`, like a benchmark round.
 * Idle time is not counted, so low demand does not read as low capacity;
 * but below the server's saturating concurrency the estimate is what that
 * load achieves, a lower bound on capacity.
 *
 * Method: an exponentially weighted average on the **busy clock** (which
 * stands still while idle), with time constant `tau = D / alpha`, `D` being
 * the mean request duration (itself an EWMA). `B` is the weighted busy time
 * and `U` the weighted units; a completion's units are spread over the busy
 * time it adds to the union of request intervals (so overlapping and
 * out-of-order completions count busy time once). The estimate is `U / B`.
 * In steady state it is exact for requests one at a time and for evenly
 * staggered parallel requests; uneven staggering leaves a ripple of about
 * `alpha (gap - mean gap) / D`. When `m` requests finish at the same
 * instant, the ones after the first add no busy time and weigh slightly
 * more: the estimate then reads high by at most `alpha (m - 1) / (2 m)`.
 * So the steady-state error stays below `alpha / 2`. Right after start it
 * reads low (work still in flight is not counted yet); this fades over
 * about `1 / alpha` request durations, and `minSamples` hides the worst.
 *
 * Bound: after the rate changes from `r0` to `r1 = k r0`, the estimate is
 * `a r0 + (1 - a) r1` with `a = exp(-T / tau)` after `T` busy time, so the
 * relative error `a |1/k - 1|` is at most `eps` once
 * `T >= tau ln(|1/k - 1| / eps)`. With `C` requests in flight that takes at
 * most `n = (C / alpha) max(1, k) ln(|1/k - 1| / eps) + C` completions
 * (`max(1, k)`: `D` still holds the older, longer durations after a
 * speed-up; `+ C`: requests in flight at the change end at the old rate).
 * See {@linkcode completionsToConverge}.
 *
 * @example Usage
 * ```ts
 * import { ThroughputEstimator } from "./throughput.ts";
 *
 * const estimator = new ThroughputEstimator({ minSamples: 1 });
 * estimator.recordCompletion(100, 0, 2000);
 * estimator.value; // 50
 * ```
 */
export class ThroughputEstimator {
  #alpha: number;
  #minSamples: number;
  #units = 0;
  #busyMs = 0;
  #meanMs = 0;
  #samples = 0;
  // Merged busy intervals [start, end] in ms, sorted, disjoint.
  #segments: [number, number][] = [];
  // Time before which busy time is no longer tracked (old segments dropped).
  #floor = -Infinity;

  /**
   * Constructs an estimator with no samples.
   *
   * @param options Smoothing; see {@linkcode ThroughputEstimatorOptions}.
   * @throws {RangeError} If `alpha` is outside (0, 1] or `minSamples` is
   *   not a positive integer.
   */
  constructor(options: ThroughputEstimatorOptions = {}) {
    const { alpha = 0.1, minSamples = 20 } = options;
    if (!(alpha > 0 && alpha <= 1)) {
      throw new RangeError(
        `Cannot use alpha ${alpha}: expected 0 < alpha <= 1`,
      );
    }
    if (!Number.isInteger(minSamples) || minSamples < 1) {
      throw new RangeError(
        `Cannot use minSamples ${minSamples}: expected a positive integer`,
      );
    }
    this.#alpha = alpha;
    this.#minSamples = minSamples;
  }

  /** Completions recorded since construction or {@linkcode reset}. */
  get samples(): number {
    return this.#samples;
  }

  /** Workload units per busy second; `undefined` until `minSamples`. */
  get value(): number | undefined {
    if (this.#samples < this.#minSamples || this.#busyMs <= 0) return undefined;
    return this.#units / (this.#busyMs / 1000);
  }

  /**
   * Records a finished request. Use one monotonic clock for both times
   * (`performance.now()`); completions may arrive in any order.
   *
   * @param workload Workload units the request carried.
   * @param startedAtMs When the request was sent to the model.
   * @param completedAtMs When it finished.
   * @throws {RangeError} If `workload` is negative or not finite, or the
   *   request ends before it starts.
   */
  recordCompletion(
    workload: number,
    startedAtMs: number,
    completedAtMs: number,
  ): void {
    if (!Number.isFinite(workload) || workload < 0) {
      throw new RangeError(`Cannot record workload ${workload}: expected >= 0`);
    }
    const duration = completedAtMs - startedAtMs;
    if (!(duration >= 0 && Number.isFinite(duration))) {
      throw new RangeError(
        `Cannot record a request from ${startedAtMs} to ${completedAtMs} ms: expected an end after the start`,
      );
    }
    this.#meanMs = this.#samples === 0
      ? duration
      : this.#meanMs + this.#alpha * (duration - this.#meanMs);
    const tau = Math.max(this.#meanMs, 1e-3) / this.#alpha;
    // Advance the busy clock: older weights decay by the new busy time.
    const added = this.#addBusy(startedAtMs, completedAtMs);
    const decay = Math.exp(-added / tau);
    // Units are spread over the busy time they bring, like B; a request
    // that ended in the past (out of order) is aged accordingly.
    const covered = tau * -Math.expm1(-added / tau);
    const spread = added > 0 ? covered / added : 1;
    const age = this.#busyAfter(completedAtMs);
    this.#units = this.#units * decay +
      workload * spread * Math.exp(-age / tau);
    this.#busyMs = this.#busyMs * decay + covered;
    this.#samples++;
  }

  /** Forgets everything, e.g. after the model server restarts. */
  reset(): void {
    this.#units = 0;
    this.#busyMs = 0;
    this.#meanMs = 0;
    this.#samples = 0;
    this.#segments = [];
    this.#floor = -Infinity;
  }

  // Adds [start, end] to the busy union; returns the newly covered time.
  #addBusy(start: number, end: number): number {
    start = Math.max(start, this.#floor);
    if (end <= start) return 0;
    const segs = this.#segments;
    let i = segs.length;
    while (i > 0 && segs[i - 1][1] >= start) i--;
    let j = i;
    let added = end - start;
    let lo = start;
    let hi = end;
    for (; j < segs.length && segs[j][0] <= end; j++) {
      const [a, b] = segs[j];
      added -= Math.max(0, Math.min(b, end) - Math.max(a, start));
      lo = Math.min(lo, a);
      hi = Math.max(hi, b);
    }
    segs.splice(i, j - i, [lo, hi]);
    if (segs.length > MAX_SEGMENTS) this.#floor = segs.shift()![1];
    return added;
  }

  // Busy time after `time` (up to the latest known end).
  #busyAfter(time: number): number {
    let total = 0;
    for (let i = this.#segments.length - 1; i >= 0; i--) {
      const [a, b] = this.#segments[i];
      if (b <= time) break;
      total += b - Math.max(a, time);
    }
    return total;
  }
}

/** Arguments of {@linkcode completionsToConverge}. */
export interface ConvergenceOptions {
  /** The estimator's smoothing. */
  alpha: number;
  /** Ratio `k` of the new rate to the old one; 1 means no change. */
  change: number;
  /** Relative error allowed, e.g. `0.1`. */
  eps: number;
  /** Requests in flight, `C`. */
  concurrency: number;
}

/**
 * Completions at a new rate after which, by the bound documented on
 * {@linkcode ThroughputEstimator}, the estimate is within `eps` of it.
 *
 * @param options Smoothing, size of the change, tolerance and concurrency.
 * @returns A number of completions.
 */
export function completionsToConverge(options: ConvergenceOptions): number {
  const { alpha, change, eps, concurrency } = options;
  const ratio = Math.abs(1 / change - 1) / eps;
  if (ratio <= 1) return concurrency;
  const n = (concurrency / alpha) * Math.max(1, change) * Math.log(ratio);
  return Math.ceil(n) + concurrency;
}
