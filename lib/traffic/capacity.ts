/**
 * The worker's capacity: the benchmark's figure (`max_perf`) and the live
 * estimate from served traffic, and the one answer the 429 rule uses.
 *
 * @module
 */
import type { Ledger } from "./ledger.ts";
import { ThroughputEstimator } from "./throughput.ts";

/**
 * The live estimate may exceed the benchmark by at most this factor: a
 * model often serves more than its benchmark measured (larger batches,
 * shorter prompts), but not an order of magnitude more; beyond that the
 * figure comes from clients overstating their workload, which must not
 * switch the queue budget off.
 */
export const LIVE_OVER_BENCHMARK_MAX = 4;

/** Options of {@linkcode Capacity}. */
export interface CapacityOptions {
  /** The live estimator; one with default smoothing when absent. */
  live?: ThroughputEstimator;
}

/**
 * Owns `max_perf` and the live throughput estimate.
 *
 * @example
 * ```ts
 * import { Capacity } from "./capacity.ts";
 * const capacity = new Capacity();
 * capacity.benchmark = 200;
 * capacity.forQueueBudget(); // 200 until traffic gives a live estimate
 * ```
 */
export class Capacity {
  #benchmark = 0;
  #live: ThroughputEstimator;

  /** Creates a capacity with no benchmark and no samples. */
  constructor(options: CapacityOptions = {}) {
    this.#live = options.live ?? new ThroughputEstimator();
  }

  /** The benchmark's workload units per second (`max_perf`), 0 before one. */
  get benchmark(): number {
    return this.#benchmark;
  }

  set benchmark(value: number) {
    this.#benchmark = Number.isFinite(value) && value > 0 ? value : 0;
  }

  /** The live estimate bounded by evidence, or undefined before enough samples. */
  get live(): number | undefined {
    const live = this.#live.value;
    if (live === undefined || this.#benchmark <= 0) return live;
    return Math.min(live, this.#benchmark * LIVE_OVER_BENCHMARK_MAX);
  }

  /** Throughput the 429 rule divides the queue by: live, else the benchmark. */
  forQueueBudget(): number | undefined {
    return this.live ?? (this.#benchmark > 0 ? this.#benchmark : undefined);
  }

  /** Feeds every successful request's work into the live estimate. */
  follow(ledger: Ledger): () => void {
    return ledger.subscribe((e) => {
      const r = e.record;
      if (
        e.type !== "finish" || r.status !== "success" || r.kind === "session"
      ) return;
      // Monotonic times: a wall-clock step back cannot make a negative duration.
      this.#live.recordCompletion(r.workload, r.startedMono!, r.completedMono!);
    });
  }
}
