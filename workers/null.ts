/**
 * Python's `null` worker (`workers/null/worker.py`, the `/reserve`
 * version): no model server. Vast's autoscaler sizes the fleet, and a
 * client holds a worker with `POST /reserve` while its own queue consumer
 * on the instance does the work; the consumer (or the hold's cap) ends it
 * with `POST /release` on a control port bound to 127.0.0.1.
 *
 * As in Python:
 * - `/reserve` is a remote function, FIFO, `maxQueueTime` 0 (a second
 *   reservation gets 429 at once, so the autoscaler routes it elsewhere),
 *   workload 100 each;
 * - it answers `{"result": {"released": "explicit", "duration_cap": d}}`
 *   on `/release`, `{"result": {"released": "duration_elapsed",
 *   "duration": d}}` after `duration` seconds (the payload's, capped at
 *   `MAX_RESERVATION_SECONDS`, 3600; absent or not a number: the cap); a
 *   client that leaves releases it too (499);
 * - the lifecycle hook writes 100 to the benchmark cache (`max_perf` 100
 *   exactly) and starts the control server on `NULL_CONTROL_PORT` (18999):
 *   `POST /release` answers `{"released": true}` or `{"released": false,
 *   "reason": "no active reservation"}`, `GET /health` answers 200 `ok`
 *   unless `BACKEND_HEALTH_URL` points the health check at the consumer;
 * - the benchmark sends `{"__null_worker_benchmark__": true}`, held 1 s.
 *
 * Ours: a bad `MAX_RESERVATION_SECONDS`, `NULL_CONTROL_PORT` or
 * `BACKEND_HEALTH_URL` is an error naming it; the hold has no first-byte
 * timeout (it lasts up to the cap). The later Python version that models
 * reservations as sessions (`max_sessions=1`, `/ping`) is not this preset:
 * `/session/create` and `maxSessions` give it with any preset.
 *
 * @module
 */
import type {
  LifecycleHook,
  RemoteFunction,
  WorkerConfig,
} from "../lib/config/schemas.ts";
import { getLogger } from "@logtape/logtape";
import { delay } from "../lib/std/async.ts";
import { type EnvVars, type Preset, presetError } from "./_preset.ts";

const log = getLogger(["edgeworker", "null"]);

/** The payload key of the benchmark's requests (Python's `BENCHMARK_SENTINEL`). */
export const NULL_BENCHMARK_SENTINEL = "__null_worker_benchmark__";

/** `max_perf` the null worker reports: one reservation of 100 at a time. */
export const NULL_MAX_PERF = 100;

interface NullSettings {
  maxReservationSeconds: number;
  controlPort: number;
  /** `BACKEND_HEALTH_URL`, when the health check goes to the consumer. */
  backendHealthUrl?: URL;
  benchmarkFile: string;
}

function settingsFrom(env: EnvVars): NullSettings {
  const problems: string[] = [];
  const cap = env.MAX_RESERVATION_SECONDS?.trim();
  const maxReservationSeconds = cap ? Number(cap) : 3600;
  if (!Number.isFinite(maxReservationSeconds) || maxReservationSeconds < 0) {
    problems.push(
      `MAX_RESERVATION_SECONDS: expected seconds (a number >= 0), got "${env.MAX_RESERVATION_SECONDS}"`,
    );
  }
  const port = env.NULL_CONTROL_PORT?.trim();
  const controlPort = port ? Number(port) : 18999;
  if (!/^\d+$/.test(port ?? "1") || controlPort < 1 || controlPort > 65535) {
    problems.push(
      `NULL_CONTROL_PORT: expected a port (1-65535), got "${env.NULL_CONTROL_PORT}"`,
    );
  }
  const health = env.BACKEND_HEALTH_URL?.trim();
  let backendHealthUrl: URL | undefined;
  if (health) {
    backendHealthUrl = URL.parse(health) ?? undefined;
    if (!backendHealthUrl || !/^https?:$/.test(backendHealthUrl.protocol)) {
      problems.push(
        `BACKEND_HEALTH_URL: expected an absolute http(s) URL, got "${env.BACKEND_HEALTH_URL}"`,
      );
    }
  }
  if (problems.length > 0) throw presetError("null", ...problems);
  return {
    maxReservationSeconds,
    controlPort,
    ...(backendHealthUrl ? { backendHealthUrl } : {}),
    benchmarkFile: env.EDGEWORKER_BENCHMARK_FILE?.trim() || ".has_benchmark",
  };
}

/** Seconds a reservation asks for, capped; Python's `float(duration)` rule. */
function durationOf(requested: unknown, cap: number): number {
  if (requested === undefined || requested === null) return cap;
  const n = typeof requested === "boolean"
    ? Number(requested)
    : typeof requested === "string" && requested.trim() !== ""
    ? Number(requested)
    : typeof requested === "number"
    ? requested
    : NaN;
  return Number.isNaN(n) ? cap : Math.max(0, Math.min(n, cap));
}

/** The reservation, the control server and the hook of one worker. */
function nullWorker(s: NullSettings): {
  reserve: RemoteFunction;
  lifecycle: LifecycleHook;
} {
  // One at a time: /reserve is FIFO, so one slot is enough.
  let active: PromiseWithResolvers<void> | undefined;

  const reserve: RemoteFunction = async (payload, { signal }) => {
    if (payload[NULL_BENCHMARK_SENTINEL]) {
      // ~100 units/s should the cache be missing (EDGEWORKER_BENCHMARK=force).
      await delay(1000, { signal });
      return { ok: true, benchmark: true };
    }
    const duration = durationOf(payload.duration, s.maxReservationSeconds);
    const mine = Promise.withResolvers<void>();
    active = mine;
    let how: "elapsed" | "released";
    const done = new AbortController();
    try {
      // A client that leaves rejects the delay: released, recorded as 499.
      how = await Promise.race([
        delay(duration * 1000, {
          signal: AbortSignal.any([signal, done.signal]),
        }).then(() => "elapsed" as const),
        mine.promise.then(() => "released" as const),
      ]);
    } finally {
      done.abort();
      if (active === mine) active = undefined;
    }
    signal.throwIfAborted();
    return how === "released"
      ? { released: "explicit", duration_cap: duration }
      : { released: "duration_elapsed", duration };
  };

  const control = (req: Request): Response => {
    const path = new URL(req.url).pathname;
    if (req.method === "POST" && path === "/release") {
      if (!active) {
        return Response.json({
          released: false,
          reason: "no active reservation",
        });
      }
      active.resolve();
      return Response.json({ released: true });
    }
    if (req.method === "GET" && path === "/health" && !s.backendHealthUrl) {
      return new Response("ok");
    }
    return new Response(null, { status: 404 });
  };

  const lifecycle: LifecycleHook = async () => {
    try {
      await Deno.writeTextFile(s.benchmarkFile, String(NULL_MAX_PERF));
    } catch (e) {
      log.warn("Cannot pin {file} to 100: {error}", {
        file: s.benchmarkFile,
        error: e instanceof Error ? e.message : String(e),
      });
    }
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: s.controlPort,
      onListen: () => {},
    }, control);
    return () => server.shutdown();
  };
  return { reserve, lifecycle };
}

/** The null preset. */
export const nullPreset: Preset = {
  name: "null",
  description:
    "No model server: POST /reserve holds the worker until POST 127.0.0.1:$NULL_CONTROL_PORT/release (Python's null worker)",
  workloadRule: "100 per reservation",
  envVars: [
    "MAX_RESERVATION_SECONDS",
    "NULL_CONTROL_PORT",
    "BACKEND_HEALTH_URL",
  ],
  config: (env): WorkerConfig => {
    const s = settingsFrom(env);
    const { reserve, lifecycle } = nullWorker(s);
    const health = s.backendHealthUrl;
    return {
      // The health check's server, as Python sets model_server_url.
      modelServerUrl: health?.origin ?? `http://127.0.0.1:${s.controlPort}`,
      modelHealthUrl: health?.href ?? "/health",
      readiness: "healthcheck",
      lifecycle,
      handlers: [{
        route: "/reserve",
        allowParallelRequests: false,
        maxQueueTime: 0,
        workload: { kind: "constant", value: 100 },
        remoteFunction: reserve,
        // A hold lasts up to MAX_RESERVATION_SECONDS.
        timeouts: { firstByte: null, idle: null },
        benchmark: {
          generator: () => ({ [NULL_BENCHMARK_SENTINEL]: true }),
          runs: 1,
          concurrency: 1,
          warmup: false,
        },
      }],
    };
  },
};
