/**
 * The worker process: builds every part from a config and the environment,
 * serves, reports, and shuts down cleanly.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { QueuePlan } from "../traffic/admission.ts";
import { Capacity } from "../traffic/capacity.ts";
import { createApp } from "../http/app.ts";
import { ClientWatch } from "../traffic/client_gone.ts";
import { SignatureVerifier } from "../auth/signatures.ts";
import type { ResolvedWorkerConfig, WorkerConfig } from "../config/schemas.ts";
import { parseWorkerConfig } from "../config/file.ts";
import { diskUsedGb } from "../autoscaler/disk_usage.ts";
import { EngineMetricsScraper } from "../model/engine_metrics.ts";
import {
  envTimeouts,
  publicUrl,
  readEnv,
  reportAddresses,
  reportIdentity,
  type WorkerEnv,
} from "../config/env.ts";
import { compileHandler } from "../traffic/handlers.ts";
import { Ledger } from "../traffic/ledger.ts";
import { Lifecycle } from "../model/lifecycle.ts";
import { listen, readTls } from "../http/listen.ts";
import { WorkerMetrics } from "../metrics/worker_metrics.ts";
import { fetchPublicKey, loadPublicKeyFile } from "../auth/pubkey.ts";
import { Readiness } from "../model/readiness.ts";
import { withoutSecrets } from "../auth/redact.ts";
import { Reporter, runLaunchFailureBeacon } from "../autoscaler/reporter.ts";
import { sessionEndApp } from "../http/session_routes.ts";
import { SessionStore } from "../traffic/sessions.ts";
import { gracefulShutdown } from "./shutdown.ts";
import { Admission } from "../traffic/ticket.ts";

const log = getLogger(["edgeworker", "worker"]);

/** Options of {@linkcode Worker.start}. */
export interface WorkerStartOptions {
  /** Environment variables; defaults to the process environment. */
  env?: Record<string, string | undefined>;
  /** Overrides `WORKER_PORT` (0 picks a free port). */
  port?: number;
  /** Overrides `WORKER_HTTP_PORT`; `false` serves no plain-HTTP port. */
  httpPort?: number | false;
  /** Stop on SIGTERM/SIGINT. @default {false} */
  handleSignals?: boolean;
  /** Test hooks: faster loops. */
  timings?: {
    reportTickMs?: number;
    heartbeatMs?: number;
    /** Reporter's per-try answer timeout. */
    reportTimeoutMs?: number;
    sessionReapMs?: number;
    logPollMs?: number;
    probeIntervalMs?: number;
  };
}

/** A running worker. */
export interface RunningWorker {
  /** Local base URL, e.g. `http://127.0.0.1:3000`. */
  readonly url: string;
  /** Port of {@linkcode RunningWorker.url}. */
  readonly port: number;
  /** Plain-HTTP port serving `/session/end`, if any. */
  readonly httpPort: number | undefined;
  /**
   * Internal (for tests): the request ledger; not public API.
   * @ignore
   */
  readonly ledger: Ledger;
  /**
   * Internal (for tests): the lifecycle; not public API.
   * @ignore
   */
  readonly lifecycle: Lifecycle;
  /** Drains in-flight requests (up to the drain time), then stops. */
  shutdown(reason?: string): Promise<void>;
  /** Resolves when the worker has stopped. */
  readonly finished: Promise<void>;
}

/**
 * A worker: `new Worker(config).run()` is a whole custom worker.
 *
 * @example
 * ```ts ignore
 * import { Worker } from "./worker.ts";
 * await new Worker({
 *   modelServerUrl: "http://127.0.0.1:18000",
 *   handlers: [{ route: "/v1/completions", allowParallelRequests: true }],
 * }).run();
 * ```
 */
export class Worker {
  /** The validated config. */
  readonly config: ResolvedWorkerConfig;

  /**
   * Validates `config`.
   *
   * @throws {ConfigError} listing every problem with its path
   */
  constructor(config: WorkerConfig | ResolvedWorkerConfig) {
    this.config = parseWorkerConfig(config);
  }

  /** Serves until SIGTERM/SIGINT, then drains and returns. */
  async run(
    options: Omit<WorkerStartOptions, "handleSignals"> = {},
  ): Promise<void> {
    let running: RunningWorker;
    try {
      running = await this.start({ ...options, handleSignals: true });
    } catch (e) {
      // Stay up, beaconing the error, until the supervisor stops us: a
      // crash loop would report nothing useful.
      await this.#beaconUntilSignal(options.env, e);
      throw e;
    }
    await running.finished;
  }

  /**
   * Starts serving. A launch failure (TLS files, port taken) is reported
   * to the autoscaler in a beacon loop before the error is thrown.
   */
  async start(options: WorkerStartOptions = {}): Promise<RunningWorker> {
    const env = readEnv(options.env ?? Deno.env.toObject());
    try {
      return await this.#start(env, options);
    } catch (e) {
      log.error("Worker failed to launch: {error}", {
        error: e instanceof Error ? e.message : String(e),
      });
      throw e;
    }
  }

  async #beaconUntilSignal(
    vars: Record<string, string | undefined> | undefined,
    error: unknown,
  ): Promise<void> {
    const env = readEnv(vars ?? Deno.env.toObject());
    const addrs = reportAddresses(env);
    if (addrs.length === 0) return;
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    Deno.addSignalListener("SIGTERM", onSignal);
    Deno.addSignalListener("SIGINT", onSignal);
    try {
      await runLaunchFailureBeacon({
        reportAddrs: addrs,
        identity: reportIdentity(env),
        errorMsg: `Worker failed to launch: ${
          error instanceof Error ? error.message : String(error)
        }`,
        signal: stop.signal,
      });
    } finally {
      Deno.removeSignalListener("SIGTERM", onSignal);
      Deno.removeSignalListener("SIGINT", onSignal);
    }
  }

  async #start(
    env: WorkerEnv,
    options: WorkerStartOptions,
  ): Promise<RunningWorker> {
    const config = this.config;
    const t = options.timings ?? {};
    // Without an autoscaler nobody acknowledges finished records: keep few.
    const reporting = reportAddresses(env).length > 0;
    const ledger = new Ledger({ maxFinished: reporting ? 100_000 : 1000 });
    const lifecycle = new Lifecycle({
      startedAt: Date.now() - performance.now(),
    });
    const timeouts = { ...config.timeouts, ...envTimeouts(env) };
    const handlers = config.handlers.map((h) =>
      compileHandler(h, config.modelServerUrl, timeouts)
    );
    const queues = new QueuePlan();
    for (const h of config.handlers) queues.add(h.route, h);

    const capacity = new Capacity();
    capacity.follow(ledger);

    const tls = env.USE_SSL ? await readTls(env) : undefined;
    const listenPort = options.port ?? env.WORKER_PORT;
    // The app needs the listening port (public URL), so the server starts
    // with a handler that is set right after, before any await.
    let handle: Deno.ServeHandler<Deno.NetAddr> = () =>
      new Response(null, { status: 503 });
    const server = listen(
      { port: listenPort, hostname: env.EDGEWORKER_HOST, ...(tls ?? {}) },
      (req, info) => handle(req, info),
      tls
        ? `WORKER_PORT with TLS from ${env.EDGEWORKER_TLS_CERT} and ${env.EDGEWORKER_TLS_KEY}`
        : "WORKER_PORT",
    );
    const port = server.addr.port;
    const scheme = tls ? "https" : "http";
    const localHost = env.EDGEWORKER_HOST === "0.0.0.0"
      ? "127.0.0.1"
      : env.EDGEWORKER_HOST;
    const url = `${scheme}://${localHost}:${port}`;

    const verifier = new SignatureVerifier({
      format: env.EDGEWORKER_SIGNATURE_FORMAT,
      unsecured: env.UNSECURED,
      ...(env.EDGEWORKER_CHECK_URL
        ? { expectedUrl: publicUrl(env, port) }
        : {}),
    });
    if (env.UNSECURED) {
      log.warn(
        "UNSECURED=true: signatures are NOT checked; anyone can use this worker",
      );
    }
    const sessions = new SessionStore({
      ledger,
      maxSessions: config.maxSessions,
      modelServerUrl: config.modelServerUrl,
      ...(t.sessionReapMs ? { reapIntervalMs: t.sessionReapMs } : {}),
    });

    const engine = config.engineMetrics
      ? new EngineMetricsScraper({
        url: config.modelServerUrl.replace(/\/+$/, "") +
          config.engineMetrics.path,
        intervalMs: config.engineMetrics.intervalSeconds * 1000,
        kind: config.engineMetrics.kind,
      })
      : undefined;

    // Reporter stats are read lazily: the reporter is built after the server
    // is listening (its URL needs the port).
    let reporter: Reporter | undefined;
    const metrics = new WorkerMetrics(ledger, {
      lifecycle: () => lifecycle.state,
      benchmarkThroughput: () => capacity.benchmark,
      liveThroughput: () => capacity.live ?? 0,
      reports: () => reporter?.stats ?? {},
      ...(engine ? { engine: () => engine.snapshot() } : {}),
    });

    const admission = new Admission({
      ledger,
      clientWatch: new ClientWatch({ localPort: port }),
    });
    const stop = new AbortController();
    stop.signal.addEventListener(
      "abort",
      () => admission.cancelAll("worker stopping"),
    );
    const app = createApp({
      handlers,
      ledger,
      queues,
      lifecycle,
      verifier,
      sessions,
      admission,
      throughput: () => capacity.forQueueBudget(),
      ...(env.EDGEWORKER_MAX_BODY_BYTES
        ? { maxBodyBytes: env.EDGEWORKER_MAX_BODY_BYTES }
        : {}),
      update: { token: env.MASTER_TOKEN, file: env.EDGEWORKER_UPDATE_FILE },
      drainRetryAfterSeconds: 5,
      metricsText: () => metrics.render(),
      // Shown without authentication: every secret is dropped here.
      status: () =>
        withoutSecrets({
          state: lifecycle.state,
          error_msg: lifecycle.errorMsg,
          loadtime: lifecycle.loadtime,
          max_perf: capacity.benchmark,
          live_throughput: capacity.live ?? null,
          in_flight: ledger.inFlightCount,
          queued: queues.waiting,
          queue_workload: ledger.queueWorkload,
          sessions: sessions.size,
          last_report: reporter?.lastStatus ?? null,
          engine: engine?.snapshot() ?? null,
        }),
    });
    handle = app.fetch;

    let httpServer: Deno.HttpServer<Deno.NetAddr> | undefined;
    const httpPort = options.httpPort === false
      ? undefined
      : options.httpPort ?? env.WORKER_HTTP_PORT ?? env.WORKER_PORT + 1;
    if (httpPort !== undefined) {
      try {
        httpServer = listen(
          { port: httpPort, hostname: env.EDGEWORKER_HOST },
          sessionEndApp({
            sessions,
            ...(env.EDGEWORKER_MAX_BODY_BYTES
              ? { maxBodyBytes: env.EDGEWORKER_MAX_BODY_BYTES }
              : {}),
          }).fetch,
          "WORKER_HTTP_PORT (serves /session/end)",
        );
      } catch (e) {
        await server.shutdown();
        await sessions.shutdown();
        metrics.close();
        throw e;
      }
    }

    const addrs = reportAddresses(env);
    const identity = reportIdentity(env, port);
    if (addrs.length > 0) {
      reporter = new Reporter({
        reportAddrs: addrs,
        ledger,
        identity,
        state: () => ({
          loadtime: lifecycle.loadtime,
          errorMsg: lifecycle.errorMsg ||
            (lifecycle.state === "draining" ? "Worker shutting down" : ""),
          maxPerf: capacity.benchmark,
        }),
        diskUsageGb: () => diskUsedGb("/"),
        ...(t.reportTickMs ? { tickMs: t.reportTickMs } : {}),
        ...(t.heartbeatMs ? { heartbeatMs: t.heartbeatMs } : {}),
        ...(t.reportTimeoutMs ? { timeoutMs: t.reportTimeoutMs } : {}),
      });
      reporter.start();
      lifecycle.onChange(() => reporter?.notify());
    } else {
      log.warn("REPORT_ADDR is not set: nothing is reported to an autoscaler");
    }

    const keyReady = loadKey(env, addrs, verifier, lifecycle, stop.signal);
    const readiness = new Readiness({
      config,
      handlers,
      lifecycle,
      logFrom: env.EDGEWORKER_LOG_FROM,
      benchmarkMode: env.EDGEWORKER_BENCHMARK,
      benchmarkFile: env.EDGEWORKER_BENCHMARK_FILE,
      keyReady: () => keyReady,
      onMaxPerf: (v) => {
        capacity.benchmark = v;
      },
      ...(t.logPollMs ? { logPollMs: t.logPollMs } : {}),
      ...(t.probeIntervalMs ? { probeIntervalMs: t.probeIntervalMs } : {}),
    });
    await readiness.start();
    engine?.start();
    log.info("Worker listening on {url} (public {public}), {n} routes", {
      url,
      public: identity.url,
      n: handlers.length,
    });

    const { shutdown, finished } = gracefulShutdown({
      lifecycle,
      ledger,
      sessions,
      stop,
      drainMs: env.EDGEWORKER_DRAIN_SECONDS * 1000,
      watchers: () => readiness.close(),
      closers: [
        () => server.shutdown(),
        async () => await httpServer?.shutdown(),
        async () => await engine?.close(),
        () => admission.close(),
      ],
      ...(reporter ? { reporter } : {}),
      metrics,
    });

    if (options.handleSignals) {
      const onSignal = (name: string) => () => {
        log.info("{signal} received: draining for up to {s}s", {
          signal: name,
          s: env.EDGEWORKER_DRAIN_SECONDS,
        });
        void shutdown(name);
      };
      const term = onSignal("SIGTERM");
      const int = onSignal("SIGINT");
      Deno.addSignalListener("SIGTERM", term);
      Deno.addSignalListener("SIGINT", int);
      void finished.then(() => {
        Deno.removeSignalListener("SIGTERM", term);
        Deno.removeSignalListener("SIGINT", int);
      });
    }

    return {
      url,
      port,
      httpPort: httpServer?.addr.port,
      ledger,
      lifecycle,
      shutdown,
      finished,
    };
  }
}

/** Loads the autoscaler key in the background; errors become the worker's. */
function loadKey(
  env: WorkerEnv,
  addrs: string[],
  verifier: SignatureVerifier,
  lifecycle: Lifecycle,
  signal: AbortSignal,
): Promise<void> {
  if (env.UNSECURED) return Promise.resolve();
  const load = env.EDGEWORKER_PUBKEY_FILE
    ? loadPublicKeyFile(env.EDGEWORKER_PUBKEY_FILE)
    : addrs.length > 0
    ? fetchPublicKey(addrs[0], { signal })
    : Promise.reject(
      new Error(
        "No public key source: set REPORT_ADDR or EDGEWORKER_PUBKEY_FILE (or UNSECURED=true)",
      ),
    );
  const ready = load.then((key) => {
    verifier.setKey(key);
    log.info("Autoscaler public key loaded");
  });
  ready.catch((e) => {
    if (!signal.aborted) {
      lifecycle.fail(
        `Cannot load the autoscaler public key: ${
          e instanceof Error ? e.message : String(e)
        }`,
      );
    }
  });
  return ready;
}
