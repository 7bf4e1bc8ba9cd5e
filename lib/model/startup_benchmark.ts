/**
 * The startup benchmark of a worker: `max_perf` from the `.has_benchmark`
 * cache, or measured against the model server with the one handler that
 * has a benchmark config, then cached.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import {
  readBenchmarkCache,
  type RoundResult,
  runBenchmark,
  writeBenchmarkCache,
} from "./benchmark.ts";
import type { ModelClient } from "./model_client.ts";
import { runRemoteFunction } from "./remote_function.ts";
import type { BenchmarkMode } from "../config/env.ts";
import type { Payload } from "../config/schemas.ts";
import type { CompiledHandler } from "../traffic/handlers.ts";

const log = getLogger(["edgeworker", "benchmark"]);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Options of {@linkcode measureMaxPerf}. */
export interface MeasureOptions {
  mode: BenchmarkMode;
  /** Path of the `.has_benchmark` cache. */
  cacheFile: string;
  signal: AbortSignal;
  /** The client requests take to the model server: the benchmark measures the same path. */
  client: ModelClient;
  /** Told where `max_perf` came from. */
  onSource?: (source: "cached" | "measured" | "none") => void;
  /** Told of each benchmark round. */
  onRound?: (round: RoundResult) => void;
}

/**
 * The throughput to report as `max_perf`: cached, measured, or 0 when
 * skipped or no handler has a benchmark.
 *
 * @throws {BenchmarkError} when every benchmark request failed
 */
export async function measureMaxPerf(
  handlers: readonly CompiledHandler[],
  options: MeasureOptions,
): Promise<number> {
  const { mode, cacheFile } = options;
  const cached = await readBenchmarkCache(cacheFile);
  if (mode !== "force" && cached !== undefined) {
    log.info("Benchmark cached in {file}: {value}", {
      file: cacheFile,
      value: cached,
    });
    options.onSource?.("cached");
    return cached;
  }
  const handler = handlers.find((h) => h.config.benchmark);
  if (mode === "skip" || !handler) {
    log.info("No benchmark run ({why}); max_perf stays 0", {
      why: mode === "skip" ? "EDGEWORKER_BENCHMARK=skip" : "no handler has one",
    });
    options.onSource?.("none");
    return 0;
  }
  const bench = handler.config.benchmark!;
  const dataset = bench.dataset;
  const nextPayload = bench.generator ??
    (() =>
      structuredClone(dataset![Math.floor(Math.random() * dataset!.length)]));
  const result = await runBenchmark({
    send: (payload: Payload, signal: AbortSignal) =>
      sendBenchmark(options.client, handler, payload, signal),
    nextPayload,
    workload: handler.workload,
    runs: bench.runs,
    concurrency: handler.config.allowParallelRequests ? bench.concurrency : 1,
    warmup: bench.warmup,
    signal: options.signal,
    onRound: (r) => {
      log.info(
        "Benchmark round {index}/{total}: {ok} ok, {failed} failed, {throughput} units/s",
        { ...r, throughput: r.throughput.toFixed(2) },
      );
      options.onRound?.(r);
    },
  });
  log.info("Benchmark done: best {best}, median {median} units/s", {
    best: result.best.toFixed(2),
    median: result.median.toFixed(2),
  });
  await writeBenchmarkCache(cacheFile, result.best);
  options.onSource?.("measured");
  return result.best;
}

async function sendBenchmark(
  client: ModelClient,
  handler: CompiledHandler,
  payload: Payload,
  signal: AbortSignal,
): Promise<boolean> {
  // A remote function is benchmarked where it runs, as Python does.
  let status: number;
  let body: string;
  if (handler.remoteFunction) {
    const res = await runRemoteFunction(handler.remoteFunction, payload, {
      signal,
      route: handler.route,
    });
    status = res.status;
    // Read the whole answer: throughput means work done, not headers sent.
    body = await res.text();
  } else {
    const answer = await client.post(
      handler.upstreamUrl,
      encoder.encode(JSON.stringify(payload)),
      null,
      signal,
    );
    status = answer.status;
    body = decoder.decode(await answer.bytes());
  }
  // A failure throws, so an all-failing benchmark names its cause.
  if (status < 200 || status > 299) {
    const from = handler.remoteFunction
      ? `the remote function of ${handler.route}`
      : handler.upstreamUrl;
    throw new Error(`HTTP ${status} from ${from}`);
  }
  // A fast "200, status: failed" must not score as fast work done.
  const failure = handler.failureOf?.(body);
  if (failure) {
    throw new Error(
      `${failure} (HTTP ${status} from ${handler.upstreamUrl})`,
    );
  }
  return true;
}
