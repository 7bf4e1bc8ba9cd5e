/** Starting a worker in-process for integration tests. */
import type { WorkerConfigInput } from "../../lib/config.ts";
import { type RunningWorker, Worker } from "../../lib/worker.ts";

/** Fast loop timings so tests stay short. */
export const FAST = {
  reportTickMs: 50,
  heartbeatMs: 300,
  sessionReapMs: 50,
  logPollMs: 50,
  probeIntervalMs: 50,
};

/** Starts a worker on a free port with `env` on top of safe test defaults. */
export async function startWorker(
  config: WorkerConfigInput,
  env: Record<string, string> = {},
): Promise<RunningWorker & { dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-test-" });
  const worker = new Worker(config);
  const running = await worker.start({
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
    timings: FAST,
  });
  return Object.assign(running, { dir });
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
