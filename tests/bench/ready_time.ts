/**
 * How long edgeworker takes to be ready once its model says it loaded
 * (README "Benchmark", the "to ready ≤ 1 s past the model's ready
 * signal plus the benchmark"): a signed worker watches an empty model log;
 * the bench appends the model's load line, then polls `GET /ready` every
 * 2 ms until 200. From `/status` it takes how long the startup benchmark
 * ran; what is left is the worker's own delay (the log watch, moving to
 * benchmarking, ready).
 *
 * `deno run -A tests/bench/ready_time.ts [trials]` prints one JSON line per
 * trial; `run.ts` takes the median.
 *
 * @module
 */
import {
  LOADED_LINE,
  startLoadingEdgeworker,
  startUpstream,
} from "./targets.ts";

/** One start, timed from the model's load line. */
export interface ReadyTime {
  /** From the line's append to the first 200 on `/ready`. */
  signalToReadyMs: number;
  /** The startup benchmark's own time (`/status` startup phases). */
  benchmarkMs: number;
  /** `signalToReadyMs - benchmarkMs`: what the target bounds. */
  pastSignalMs: number;
}

/** Benchmark rounds of the start timed (each a few `/echo` calls). */
const BENCHMARK_RUNS = 2;

/** Times one start of a worker in front of `upstream`. */
export async function timeToReady(
  upstream: string,
  publicPem: string,
): Promise<ReadyTime> {
  const t = await startLoadingEdgeworker(upstream, publicPem, BENCHMARK_RUNS);
  try {
    if ((await fetch(`${t.url}/ready`).then(statusOf)) === 200) {
      throw new Error("the worker was ready before its model's load line");
    }
    const t0 = performance.now();
    await Deno.writeTextFile(
      t.logFile,
      `INFO:     Started server process [7]\n${LOADED_LINE}\n`,
      { append: true },
    );
    let ready = 0;
    while (performance.now() - t0 < 30_000) {
      if ((await fetch(`${t.url}/ready`).then(statusOf)) === 200) {
        ready = performance.now();
        break;
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    if (!ready) throw new Error("not ready 30 s after the model's load line");
    const status = await (await fetch(`${t.url}/status`)).json();
    const phases: { phase: string; seconds: number | null }[] =
      status.startup?.phases ?? [];
    const bench = phases.find((p) => p.phase === "benchmark");
    if (bench?.seconds == null) {
      throw new Error("/status shows no finished benchmark phase");
    }
    const signalToReadyMs = ready - t0;
    const benchmarkMs = bench.seconds * 1000;
    return {
      signalToReadyMs,
      benchmarkMs,
      pastSignalMs: signalToReadyMs - benchmarkMs,
    };
  } finally {
    await t.stop();
  }
}

async function statusOf(r: Response): Promise<number> {
  await r.body?.cancel();
  return r.status;
}

if (import.meta.main) {
  const { generateKeys } = await import("../helpers/signing.ts");
  const keys = await generateKeys();
  const upstream = await startUpstream();
  try {
    for (let i = 0; i < Number(Deno.args[0] ?? 3); i++) {
      const r = await timeToReady(upstream.url, keys.publicPem);
      console.log(
        JSON.stringify(
          r,
          (_k, v) => typeof v === "number" ? Math.round(v * 10) / 10 : v,
        ),
      );
    }
  } finally {
    await upstream.stop();
  }
}
