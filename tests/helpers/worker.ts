/**
 * Starting a worker in-process for integration tests, and the envelope
 * its routes take.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { WorkerConfig } from "../../lib/config/schemas.ts";
import {
  type RunningWorker,
  Worker,
  type WorkerStartOptions,
} from "../../lib/worker/worker.ts";
import { waitFor } from "./http.ts";
import {
  startUpstream,
  type UpstreamHandle,
  type UpstreamOptions,
} from "./upstream.ts";

/** Fast loop timings so tests stay short. */
export const FAST = {
  reportTickMs: 50,
  heartbeatMs: 300,
  sessionReapMs: 50,
  logPollMs: 50,
  probeIntervalMs: 50,
};

/** The worker's marker files (benchmark done, update forced) kept in `dir`. */
export function markerFiles(dir: string): Record<string, string> {
  return {
    EDGEWORKER_BENCHMARK_FILE: `${dir}/.has_benchmark`,
    EDGEWORKER_UPDATE_FILE: `${dir}/.force_update`,
  };
}

/** A worker started by {@linkcode startWorker}, with its temp dir. */
export type Running = RunningWorker & {
  dir: string;
  /** Shuts the worker down and removes its temp dir. */
  stop(): Promise<void>;
};

/**
 * Starts a worker on a free port with `env` on top of safe test defaults
 * (`config` may be a function of that env, as a preset's is),
 * and the given loop timings ({@linkcode FAST} unless given; `{}` keeps the
 * production ones: a 1 s report tick and a 10 s heartbeat); no plain HTTP
 * port unless `httpPort` is given (0: a free one).
 */
export async function startWorker(
  config: WorkerConfig | ((env: Record<string, string>) => WorkerConfig),
  env: Record<string, string> = {},
  timings: WorkerStartOptions["timings"] = FAST,
  httpPort: number | false = false,
): Promise<Running> {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-test-" });
  const fullEnv = {
    UNSECURED: "true",
    EDGEWORKER_HOST: "127.0.0.1",
    ...markerFiles(dir),
    EDGEWORKER_DRAIN_SECONDS: "2",
    ...env,
  };
  const running = await new Worker(
    typeof config === "function" ? config(fullEnv) : config,
  ).start({
    env: fullEnv,
    port: 0,
    httpPort,
    timings,
  });
  const stop = async () => {
    await running.shutdown();
    await Deno.remove(dir, { recursive: true });
  };
  return Object.assign(running, { dir, stop });
}

/**
 * Runs `fn` with the scripted model server (`options.upstream`) and a
 * worker for `handlers` (and `options.config`) once it is ready; then
 * checks that the scenario left nothing in flight (no record, no load) and
 * stops both.
 */
export async function withUpstreamWorker(
  handlers: WorkerConfig["handlers"],
  fn: (w: Running, up: UpstreamHandle) => Promise<void>,
  env: Record<string, string> = {},
  options: {
    upstream?: UpstreamOptions;
    config?: Omit<WorkerConfig, "modelServerUrl" | "handlers">;
  } = {},
): Promise<void> {
  const up = startUpstream(options.upstream);
  const w = await startWorker(
    { ...options.config, modelServerUrl: up.url, handlers },
    env,
  );
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    await fn(w, up);
    await waitFor(() => w.ledger.inFlightCount === 0, 5000, "ledger empty");
    assert.equal(w.ledger.currentLoad, 0);
  } finally {
    await w.stop();
    await up.close();
  }
}

/** An `auth_data` a worker takes when UNSECURED (its signature is unchecked). */
export const UNSIGNED_AUTH: Readonly<Record<string, unknown>> = {
  cost: 100,
  endpoint: "test",
  reqnum: 1,
  request_idx: 1,
  signature: "unsigned",
  url: "http://127.0.0.1",
};

/** A valid envelope around `payload` (signature unchecked when UNSECURED). */
export function envelope(
  payload: Record<string, unknown>,
  auth: Record<string, unknown> = {},
): string {
  return JSON.stringify({ auth_data: { ...UNSIGNED_AUTH, ...auth }, payload });
}
