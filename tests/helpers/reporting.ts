/**
 * Shared pieces of the reporting tests (`reporting_test.ts`,
 * `delete_requests_test.ts`, `metrics_test.ts`, `poisoned_figures_test.ts`):
 * a worker between the control plane and the scripted upstream, stopping a
 * worker, the control-plane bodies as typed records, the split of recorded
 * bodies into accepted and refused ones, and one mixed run of every request
 * outcome.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { WorkerConfig } from "../../lib/config/schemas.ts";
import {
  type ControlPlane,
  type Recorded,
  startControlPlane,
} from "../../dev/control_plane.ts";
import type { WorkerStatus } from "../../lib/autoscaler/wire.ts";
import type { RunningWorker } from "../../lib/worker/worker.ts";
import { signedAuth, type TestKeys } from "./signing.ts";
import { startUpstream, type UpstreamHandle } from "./upstream.ts";
import { post, waitFor } from "./http.ts";
import { type Running, startWorker } from "./worker.ts";

export type { Running };

/** Shuts a worker of `startWorker` down and removes its temp dir. */
export async function stopWorker(w: Running | undefined): Promise<void> {
  if (!w) return;
  await w.stop();
}

/** Options of {@linkcode withReportingWorker}. */
export interface ReportingOptions {
  handlers: WorkerConfig["handlers"];
  /** Environment on top of `REPORT_ADDR` (the control plane). */
  env?: Record<string, string>;
  /** Loop timings ({@linkcode startWorker}'s `FAST` unless given). */
  timings?: Parameters<typeof startWorker>[2];
  /** More of the worker's config. */
  config?: Partial<WorkerConfig>;
}

/** What {@linkcode withReportingWorker} runs its test with. */
export interface ReportingSetup {
  cp: ControlPlane;
  up: UpstreamHandle;
  w: Running;
}

/**
 * Runs `fn` with the control-plane stand-in, the scripted upstream and a
 * worker (not yet ready) reporting to the one and serving the other; then
 * stops all three.
 */
export async function withReportingWorker(
  options: ReportingOptions,
  fn: (s: ReportingSetup) => Promise<void>,
): Promise<void> {
  const cp = await startControlPlane();
  const up = startUpstream();
  let w: Running | undefined;
  try {
    w = await startWorker(
      { modelServerUrl: up.url, handlers: options.handlers, ...options.config },
      { REPORT_ADDR: cp.url, ...options.env },
      options.timings,
    );
    await fn({ cp, up, w });
  } finally {
    await stopWorker(w);
    await up.close();
    await cp.close();
  }
}

/** One entry of a `/delete_requests/` body. */
export interface DeleteItem {
  request_idx: number;
  success: boolean;
  status: string;
  entered_queue_at: number;
  work_started_at: number;
  work_completed_at: number;
}

/** A `/delete_requests/` body. */
export interface DeleteBody {
  worker_id: number;
  mtoken: string;
  requests: DeleteItem[];
}

/** The recorded body as a worker status. */
export function statusOf(r: Recorded): WorkerStatus {
  return r.body as WorkerStatus;
}

/**
 * Which recorded bodies got a 2xx: the control plane answers synchronously
 * after recording (no delay set), so switching its reply and reading the
 * record count in one synchronous step splits the records exactly.
 * `refused` holds `[from, to)` index ranges recorded while it answered an
 * error.
 */
export function accepted(
  records: readonly Recorded[],
  refused: readonly [number, number][] = [],
): Recorded[] {
  return records.filter((_, i) => !refused.some(([a, b]) => i >= a && i < b));
}

/** Sum of a numeric status field over records. */
export function sumOf(
  records: readonly Recorded[],
  field: "new_load" | "cur_perf" | "rej_load",
): number {
  return records.reduce((s, r) => s + statusOf(r)[field], 0);
}

/** Every delete item of the records, in arrival order. */
export function deleteItems(records: readonly Recorded[]): DeleteItem[] {
  return records.flatMap((r) => (r.body as DeleteBody).requests);
}

/** The `p`-th percentile (0-100, nearest rank) of `values`. */
export function percentile(values: readonly number[], p: number): number {
  assert.ok(values.length > 0, "no values");
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** Compares `a` and `b` with a float tolerance. */
export function assertClose(a: number, b: number, what: string): void {
  assert.ok(Math.abs(a - b) < 1e-6, `${what}: ${a} != ${b}`);
}

/** Handlers of the mixed run (all parallel; only `/slow` has a budget). */
export const MIXED_HANDLERS: WorkerConfig["handlers"] = [
  {
    route: "/echo",
    allowParallelRequests: true,
    maxQueueTime: null,
    workload: { kind: "field", path: "w", default: 1 },
  },
  {
    route: "/model-status",
    upstreamRoute: "/status",
    allowParallelRequests: true,
    maxQueueTime: null,
    workload: { kind: "field", path: "w", default: 1 },
  },
  {
    route: "/reset",
    allowParallelRequests: true,
    maxQueueTime: null,
    workload: { kind: "field", path: "w", default: 1 },
  },
  {
    route: "/stream",
    allowParallelRequests: true,
    maxQueueTime: null,
    workload: { kind: "field", path: "w", default: 1 },
  },
  {
    route: "/slow",
    allowParallelRequests: true,
    maxQueueTime: 1,
    workload: { kind: "field", path: "w", default: 1 },
  },
];

/** `max_perf` the mixed run caches in `.has_benchmark` (units/s). */
export const MIXED_MAX_PERF = 10;

/** What the mixed run did to each request, by `request_idx`. */
export interface MixedExpectation {
  route: string;
  status: "Success" | "Error" | "Cancelled" | "Rejected";
  workload: number;
  reason?: "budget" | "signature";
}

/** The outcome of every request of {@linkcode runMixed}, by `request_idx`. */
export const MIXED: ReadonlyMap<number, MixedExpectation> = new Map([
  [1, { route: "/slow", status: "Success", workload: 20 }],
  [2, { route: "/slow", status: "Rejected", workload: 1, reason: "budget" }],
  [3, { route: "/echo", status: "Success", workload: 1 }],
  [4, { route: "/echo", status: "Success", workload: 2 }],
  [5, { route: "/echo", status: "Success", workload: 3.5 }],
  // The model's own 500 is relayed and counts as served, as in Python.
  [6, { route: "/model-status", status: "Success", workload: 4 }],
  [7, { route: "/reset", status: "Error", workload: 5 }],
  [8, { route: "/stream", status: "Cancelled", workload: 6 }],
  [9, { route: "/echo", status: "Rejected", workload: 7, reason: "signature" }],
]);

/** How long request 1 of the mixed run takes at the model server. */
export const SLOW_MS = 1000;

/** The public URL the signatures of the mixed run cover. */
const SIGNED_URL = "https://203.0.113.5:41234";

/**
 * {@linkcode withReportingWorker} on {@linkcode MIXED_HANDLERS}, once the
 * worker is ready: it checks signatures against `keys` (from a file) and
 * has a cached benchmark of {@linkcode MIXED_MAX_PERF}; `env` goes on top.
 */
export async function withMixedWorker(
  keys: TestKeys,
  env: Record<string, string>,
  fn: (s: ReportingSetup) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-mixed-" });
  try {
    const keyFile = `${dir}/autoscaler_pubkey.pem`;
    await Deno.writeTextFile(keyFile, keys.publicPem);
    const bench = `${dir}/.has_benchmark`;
    await Deno.writeTextFile(bench, `${MIXED_MAX_PERF}.0`);
    await withReportingWorker({
      handlers: MIXED_HANDLERS,
      env: {
        UNSECURED: "false",
        EDGEWORKER_PUBKEY_FILE: keyFile,
        EDGEWORKER_BENCHMARK_FILE: bench,
        ...env,
      },
    }, async (s) => {
      await waitFor(() => s.w.lifecycle.ready, 3000, "ready");
      await fn(s);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Options of {@linkcode runMixed}. */
export interface MixedHooks {
  /** Called while request 1 (`/slow`, workload 20, {@linkcode SLOW_MS}) is in flight. */
  whileSlowInFlight?: () => Promise<void>;
}

/**
 * Sends the requests of {@linkcode MIXED} to a worker set up by
 * {@linkcode mixedWorkerSetup}: success, budget 429, model 500, mid-stream
 * reset, client abort and bad signature. Resolves once every request is
 * finished in the ledger; every body is consumed.
 */
export async function runMixed(
  w: RunningWorker,
  keys: TestKeys,
  hooks: MixedHooks = {},
): Promise<void> {
  const auth = (idx: number) =>
    signedAuth(keys.privateKey, SIGNED_URL, { request_idx: idx, reqnum: idx });
  const body = async (idx: number, payload: Record<string, unknown>) =>
    JSON.stringify({
      auth_data: await auth(idx),
      payload: { w: MIXED.get(idx)!.workload, ...payload },
    });
  const send = async (
    idx: number,
    payload: Record<string, unknown>,
    init: RequestInit = {},
  ) => post(w.url, MIXED.get(idx)!.route, await body(idx, payload), init);
  // Finished records leave `pendingFinished()` once reported: listen instead.
  const done = new Set<number | bigint>();
  const unsubscribe = w.ledger.subscribe((e) => {
    if (e.type === "finish" || e.type === "reject") {
      done.add(e.record.requestIdx);
    }
  });
  const finished = (idx: number) => () => done.has(idx);
  try {
    await sendAll();
  } finally {
    unsubscribe();
  }

  async function sendAll(): Promise<void> {
    // 1 in flight holds 20 units; at 10 units/s that is 2 s > maxQueueTime 1.
    const slow = send(1, { delay_ms: SLOW_MS });
    await waitFor(() => w.ledger.inFlightCount === 1, 3000, "request 1 open");
    const refused = await send(2, {});
    assert.equal(refused.status, 429);
    await refused.body?.cancel();
    await hooks.whileSlowInFlight?.();
    const slowRes = await slow;
    assert.equal(slowRes.status, 200);
    assert.deepEqual(await slowRes.json(), { seq: null });

    for (const idx of [3, 4, 5]) {
      const res = await send(idx, {});
      assert.equal(res.status, 200);
      await res.json();
    }

    const model500 = await send(6, { status: 500 });
    assert.equal(model500.status, 500);
    assert.deepEqual(await model500.json(), { error: "model says no" });

    // The model server breaks off after two chunks: the client's read fails.
    const reset = await send(7, { chunks: 5, gap_ms: 10 });
    assert.equal(reset.status, 200);
    await assert.rejects(reset.text());
    await waitFor(finished(7), 3000, "request 7 finished");

    // The client goes away after the first chunk of an endless stream.
    const abort = new AbortController();
    const stream = await send(8, { chunks: 100000, gap_ms: 20 }, {
      signal: abort.signal,
    });
    assert.equal(stream.status, 200);
    const reader = stream.body!.getReader();
    const first = await reader.read();
    assert.match(new TextDecoder().decode(first.value), /"i":0/);
    abort.abort();
    await reader.read().catch(() => {});
    await waitFor(finished(8), 3000, "request 8 finished");

    // A signature over another URL than the one it claims.
    const forged = { ...await auth(9), url: "https://198.51.100.7:1234" };
    const bad = await post(
      w.url,
      "/echo",
      JSON.stringify({ auth_data: forged, payload: { w: 7 } }),
    );
    assert.equal(bad.status, 401);
    await bad.body?.cancel();

    await waitFor(
      () =>
        w.ledger.inFlightCount === 0 &&
        [...MIXED.keys()].every((idx) => finished(idx)()),
      3000,
      "every mixed request finished",
    );
  }
}

/** Waits until the control plane holds a delete item for each index. */
export async function waitForDeletes(
  cp: ControlPlane,
  idxs: Iterable<number>,
  timeoutMs = 5000,
): Promise<void> {
  const want = [...idxs];
  await waitFor(
    () => {
      const seen = new Set(
        deleteItems(cp.deleteReports).map((d) => d.request_idx),
      );
      return want.every((i) => seen.has(i));
    },
    timeoutMs,
    `delete_requests for ${want.join(",")}`,
  );
}
