/**
 * Benchmark runner (measures `max_perf`) and the `.has_benchmark` cache.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { pythonFloatRepr } from "../auth/python_json.ts";
import type { Payload } from "../config/schemas.ts";

const log = getLogger(["edgeworker", "benchmark"]);

/** Options for {@linkcode runBenchmark}. */
export interface BenchmarkOptions {
  /** Sends one request to the model server; resolves `true` on success. */
  send: (payload: Payload, signal: AbortSignal) => Promise<boolean>;
  /** Makes the next benchmark payload. */
  nextPayload: () => Payload;
  /** Workload units of a payload (the same calculator as live traffic). */
  workload: (payload: Payload) => number;
  /** Number of rounds; a positive integer. */
  runs: number;
  /** Requests in flight per round; a positive integer. */
  concurrency: number;
  /** Send one request first and ignore its result. */
  warmup: boolean;
  /** Called after each round. */
  onRound?: (round: RoundResult) => void;
  /** Aborts the benchmark; passed to every `send`. */
  signal?: AbortSignal;
}

/** The outcome of one round. */
export interface RoundResult {
  /** 1-based round number. */
  index: number;
  /** Number of rounds in the benchmark. */
  total: number;
  /** Successful requests. */
  ok: number;
  /** Failed requests (`send` resolved `false` or threw). */
  failed: number;
  /** Workload units of successful requests per second of the round. */
  throughput: number;
  /** Wall time of the round, in seconds. */
  seconds: number;
}

/** The outcome of {@linkcode runBenchmark}. */
export interface BenchmarkResult {
  /** Highest round throughput (what Python reports as `max_perf`). */
  best: number;
  /** Median round throughput. */
  median: number;
  /** Every round, in order. */
  rounds: RoundResult[];
  /** Successful requests over all rounds (warm-up excluded). */
  ok: number;
  /** Failed requests over all rounds (warm-up excluded). */
  failed: number;
}

/** Thrown when no benchmark request succeeded at all. */
export class BenchmarkError extends Error {
  /**
   * Constructs the error.
   *
   * @param message What failed.
   * @param options `cause`: the last error `send` threw, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BenchmarkError";
  }
}

/**
 * Measures throughput like PyWorker: an optional warm-up request, then
 * `runs` rounds of `concurrency` parallel requests each. A round's
 * throughput is the workload of its successful requests over its wall time.
 *
 * @param options What to send and how; see {@linkcode BenchmarkOptions}.
 * @returns Best and median throughput plus every round.
 * @throws {BenchmarkError} If every request of every round failed.
 * @throws {RangeError} If `runs` or `concurrency` is not a positive integer.
 */
export async function runBenchmark(
  options: BenchmarkOptions,
): Promise<BenchmarkResult> {
  const runs = positiveInteger("runs", options.runs);
  const concurrency = positiveInteger("concurrency", options.concurrency);
  const signal = options.signal ?? new AbortController().signal;
  let lastError: unknown;
  const attempt = async (payload: Payload): Promise<boolean> => {
    try {
      return await options.send(payload, signal);
    } catch (error) {
      lastError = error;
      return false;
    }
  };

  if (options.warmup) {
    const ok = await attempt(options.nextPayload());
    if (!ok) log.warn("Benchmark warm-up request failed");
    signal.throwIfAborted();
  }

  const rounds: RoundResult[] = [];
  for (let index = 1; index <= runs; index++) {
    const payloads = Array.from({ length: concurrency }, options.nextPayload);
    // Workload first: `send` may change the payload.
    const units = payloads.map((p) => options.workload(p));
    const started = performance.now();
    const results = await Promise.all(payloads.map(attempt));
    const seconds = (performance.now() - started) / 1000;
    signal.throwIfAborted();
    let done = 0;
    let ok = 0;
    for (let i = 0; i < concurrency; i++) {
      if (!results[i]) continue;
      ok++;
      done += units[i];
    }
    const throughput = seconds > 0 ? done / seconds : 0;
    const round = {
      index,
      total: runs,
      ok,
      failed: concurrency - ok,
      throughput,
      seconds,
    };
    rounds.push(round);
    log.debug("Benchmark round {index}/{total}: {throughput} units/s", {
      ...round,
    });
    options.onRound?.(round);
  }

  const ok = rounds.reduce((sum, r) => sum + r.ok, 0);
  const failed = rounds.reduce((sum, r) => sum + r.failed, 0);
  if (ok === 0) {
    const cause = lastError === undefined ? "" : `: ${describe(lastError)}`;
    throw new BenchmarkError(
      `Benchmark failed: all ${failed} requests failed${cause}`,
      lastError === undefined ? undefined : { cause: lastError },
    );
  }
  const sorted = rounds.map((r) => r.throughput).sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2
    ? sorted[mid]
    : (sorted[mid - 1] + sorted[mid]) / 2;
  return { best: sorted[sorted.length - 1], median, rounds, ok, failed };
}

function positiveInteger(name: string, value: number): number {
  if (Number.isInteger(value) && value >= 1) return value;
  throw new RangeError(
    `Cannot run a benchmark with ${name} ${value}: expected a positive integer`,
  );
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Reads a cached benchmark result: the first line of a `.has_benchmark` file
 * as written by Python (`str(float)`) or by {@linkcode writeBenchmarkCache}.
 *
 * @param path The cache file.
 * @returns The throughput, or `undefined` if the file is missing or holds
 *   no positive number (a warning is logged; the benchmark should rerun).
 */
export async function readBenchmarkCache(
  path: string,
): Promise<number | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    log.warn("Cannot read benchmark cache {path}: {error}", { path, error });
    return undefined;
  }
  const first = text.split("\n", 1)[0].trim();
  const value = FLOAT_TEXT.test(first) ? Number(first) : NaN;
  if (!Number.isFinite(value) || value <= 0) {
    log.warn(
      "Ignoring benchmark cache {path}: {text} is not a positive number",
      {
        path,
        text: first.slice(0, 40),
      },
    );
    return undefined;
  }
  return value;
}

// Decimal or exponent notation, as Python's float() accepts and str() writes.
const FLOAT_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/**
 * Writes a benchmark result so Python's `float(first line)` reads it back,
 * formatted like Python's `str(float)` (`50` -> `50.0`, `1e16` -> `1e+16`).
 * The file is replaced atomically (write, then rename).
 *
 * @param path The cache file.
 * @param value Throughput in workload units per second.
 * @throws {RangeError} If `value` is negative or not finite.
 */
export async function writeBenchmarkCache(
  path: string,
  value: number,
): Promise<void> {
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(
      `Cannot cache benchmark result ${value}: expected a finite number >= 0`,
    );
  }
  const temp = `${path}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(temp, pythonFloatRepr(value));
  await Deno.rename(temp, path);
}
