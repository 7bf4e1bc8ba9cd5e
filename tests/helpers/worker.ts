/** Starting a worker in-process for integration tests. */
import assert from "node:assert/strict";
import type { WorkerConfig } from "../../lib/config/schemas.ts";
import {
  type RunningWorker,
  Worker,
  type WorkerStartOptions,
} from "../../lib/worker/worker.ts";
import { startUpstream, type UpstreamHandle } from "./upstream.ts";

/** Fast loop timings so tests stay short. */
export const FAST = {
  reportTickMs: 50,
  heartbeatMs: 300,
  sessionReapMs: 50,
  logPollMs: 50,
  probeIntervalMs: 50,
};

/** A worker started by {@linkcode startWorker}, with its temp dir. */
export type Running = RunningWorker & { dir: string };

/**
 * Starts a worker on a free port with `env` on top of safe test defaults,
 * and the given loop timings ({@linkcode FAST} unless given; `{}` keeps the
 * production ones: a 1 s report tick and a 10 s heartbeat).
 */
export async function startWorker(
  config: WorkerConfig,
  env: Record<string, string> = {},
  timings: WorkerStartOptions["timings"] = FAST,
): Promise<Running> {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-test-" });
  const running = await new Worker(config).start({
    env: {
      UNSECURED: "true",
      EDGEWORKER_HOST: "127.0.0.1",
      EDGEWORKER_BENCHMARK_FILE: `${dir}/.has_benchmark`,
      EDGEWORKER_UPDATE_FILE: `${dir}/.force_update`,
      EDGEWORKER_DRAIN_SECONDS: "2",
      ...env,
    },
    port: 0,
    httpPort: false,
    timings,
  });
  return Object.assign(running, { dir });
}

/**
 * Runs `fn` with the scripted model server and a worker for `handlers`
 * once it is ready; then checks that the scenario left nothing in flight
 * (no record, no load) and stops both.
 */
export async function withUpstreamWorker(
  handlers: WorkerConfig["handlers"],
  fn: (w: Running, up: UpstreamHandle) => Promise<void>,
  env: Record<string, string> = {},
): Promise<void> {
  const up = startUpstream();
  const w = await startWorker({ modelServerUrl: up.url, handlers }, env);
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    await fn(w, up);
    await waitFor(() => w.ledger.inFlightCount === 0, 3000, "ledger empty");
    assert.equal(w.ledger.currentLoad, 0);
  } finally {
    await w.shutdown();
    await up.close();
    await Deno.remove(w.dir, { recursive: true });
  }
}

/** Waits until `cond()` holds, polling; throws after `timeoutMs`. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 3000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A valid envelope around `payload` (signature unchecked when UNSECURED). */
export function envelope(
  payload: Record<string, unknown>,
  auth: Record<string, unknown> = {},
): string {
  return JSON.stringify({
    auth_data: {
      cost: 100,
      endpoint: "test",
      reqnum: 1,
      request_idx: 1,
      signature: "unsigned",
      url: "http://127.0.0.1",
      ...auth,
    },
    payload,
  });
}

/** POSTs JSON text to the worker. */
export function post(
  base: string,
  route: string,
  body: string,
  init: RequestInit = {},
): Promise<Response> {
  return fetch(base + route, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    ...init,
  });
}
