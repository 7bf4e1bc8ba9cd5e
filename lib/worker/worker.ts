/**
 * The worker process: listens, builds every part once the port is known,
 * serves the app, starts the loops (reports, key, readiness, engine
 * metrics), and shuts down cleanly.
 *
 * Longer than most modules: the Worker class and the few start-up helpers only it calls.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { fetchPublicKey, loadPublicKeyFile } from "../auth/pubkey.ts";
import type { SignatureVerifier } from "../auth/signatures.ts";
import { readEnv, type WorkerEnv } from "../config/env.ts";
import { parseWorkerConfig } from "../config/validate.ts";
import type { ResolvedWorkerConfig, WorkerConfig } from "../config/schemas.ts";
import { serveApp } from "../http/app.ts";
import {
  connectionTimeouts,
  listen,
  readTls,
  type Server,
} from "../http/listen.ts";
import { sessionEndApp } from "../http/session_routes.ts";
import { resolveCanary } from "../model/canary.ts";
import type { Lifecycle } from "../model/lifecycle.ts";
import { Readiness } from "../model/readiness.ts";
import type { Ledger } from "../traffic/ledger.ts";
import { raiseFdLimit } from "./fd_limit.ts";
import { MemoryTrim } from "./memory_trim.ts";
import { announceLaunchFailure } from "./launch_failure.ts";
import { buildParts, type WorkerParts, type WorkerTimings } from "./parts.ts";
import { gracefulShutdown } from "./shutdown.ts";
import { dashboardOf, healthMetricsOf, statusOf } from "./views.ts";
import { errorText } from "../std/errors.ts";

const log = getLogger(["edgeworker", "worker"]);

/** Seconds a client is told to wait before retrying during shutdown. */
const DRAIN_RETRY_AFTER_SECONDS = 5;

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
  timings?: WorkerTimings;
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

  /**
   * Serves until SIGTERM/SIGINT, then drains and returns. A launch failure
   * is reported to the autoscaler until the supervisor stops us, then
   * thrown.
   */
  async run(
    options: Omit<WorkerStartOptions, "handleSignals"> = {},
  ): Promise<void> {
    const env = readEnv(options.env ?? Deno.env.toObject());
    let running: RunningWorker;
    try {
      running = await this.#start(env, { ...options, handleSignals: true });
    } catch (e) {
      await announceLaunchFailure(
        env,
        `Worker failed to launch: ${errorText(e)}`,
        "until-signal",
      );
      throw e;
    }
    await running.finished;
  }

  /** Starts serving; a launch failure (TLS files, port taken) is thrown. */
  async start(options: WorkerStartOptions = {}): Promise<RunningWorker> {
    const env = readEnv(options.env ?? Deno.env.toObject());
    try {
      return await this.#start(env, options);
    } catch (e) {
      log.error("Worker failed to launch: {error}", { error: errorText(e) });
      throw e;
    }
  }

  async #start(
    env: WorkerEnv,
    options: WorkerStartOptions,
  ): Promise<RunningWorker> {
    // The environment's canary settings are checked before anything listens.
    const config = { ...this.config, canary: resolveCanary(this.config, env) };
    const tls = env.USE_SSL ? await readTls(env) : undefined;
    // The parts need the listening port, so the server starts with a
    // handler set right after, before any await.
    let serve: Deno.ServeHandler<Deno.NetAddr> = () =>
      new Response(null, { status: 503 });
    logFdLimit();
    const limits = connectionTimeouts(env);
    const server = listen(
      {
        port: options.port ?? env.WORKER_PORT,
        hostname: env.EDGEWORKER_HOST,
        ...tls,
        ...limits,
      },
      (req, info) => serve(req, info),
      tls
        ? `WORKER_PORT with TLS from ${env.EDGEWORKER_TLS_CERT} and ${env.EDGEWORKER_TLS_KEY}`
        : "WORKER_PORT",
    );
    const port = server.addr.port;
    const parts = buildParts(config, env, port, options.timings ?? {});
    const { ledger, lifecycle, sessions, reporter, engine, modelClient } =
      parts;
    const stop = new AbortController();
    stop.signal.addEventListener(
      "abort",
      () => parts.admission.cancelAll("worker stopping"),
    );
    serve = serveApp({
      ...parts,
      throughput: () => parts.capacity.forQueueBudget(),
      maxBodyBytes: env.EDGEWORKER_MAX_BODY_BYTES,
      update: { token: env.MASTER_TOKEN, file: env.EDGEWORKER_UPDATE_FILE },
      drainRetryAfterSeconds: DRAIN_RETRY_AFTER_SECONDS,
      metricsText: () => parts.metrics.render() + healthMetricsOf(parts),
      status: () => statusOf(parts),
      health: () => parts.levels.view(),
      dashboard: env.EDGEWORKER_DASHBOARD ? dashboardOf(parts, env) : undefined,
    });

    let httpServer: Server | undefined;
    try {
      httpServer = openSessionEndPort(env, options, parts, limits);
    } catch (e) {
      await server.shutdown();
      await sessions.shutdown();
      await parts.admission.close();
      parts.metrics.close();
      modelClient.close();
      throw e;
    }

    // The loops, in order: reports first, so "loading" is seen at once.
    if (reporter) {
      reporter.start();
      lifecycle.onChange(() => reporter.notify());
    } else {
      log.warn("REPORT_ADDR is not set: nothing is reported to an autoscaler");
    }
    const keyReady = loadKey(env, parts, stop.signal);
    const timings = options.timings ?? {};
    const readiness = new Readiness({
      config,
      handlers: parts.handlers,
      lifecycle,
      logFrom: env.EDGEWORKER_LOG_FROM,
      benchmarkMode: env.EDGEWORKER_BENCHMARK,
      benchmarkFile: env.EDGEWORKER_BENCHMARK_FILE,
      keyReady: () => keyReady,
      onMaxPerf: (v) => {
        parts.capacity.benchmark = v;
      },
      modelClient,
      logPollMs: timings.logPollMs,
      probeIntervalMs: timings.probeIntervalMs,
      timeline: parts.timeline,
      levels: parts.levels,
      supervisorLog: env.EDGEWORKER_SUPERVISOR_LOG,
      onLogError: (source, phase) => parts.metrics.countLogError(source, phase),
    });
    await readiness.start();
    engine?.start();
    parts.canary?.start();
    const host = env.EDGEWORKER_HOST === "0.0.0.0"
      ? "127.0.0.1"
      : env.EDGEWORKER_HOST;
    const url = `${tls ? "https" : "http"}://${host}:${port}`;
    log.info("Worker listening on {url} (public {public}), {n} routes", {
      url,
      public: parts.publicUrl,
      n: parts.handlers.length,
    });

    const memoryTrim = new MemoryTrim({
      usr2Trim: env.DENO_USR2_MEMORY_TRIM,
      busy: () => ledger.inFlightCount > 0,
      activity: () => ledger.receivedCount,
    });
    const { shutdown, finished } = gracefulShutdown({
      lifecycle,
      ledger,
      sessions,
      stop,
      drainMs: env.EDGEWORKER_DRAIN_SECONDS * 1000,
      watchers: () => readiness.close(),
      closers: [
        () => Promise.resolve(parts.resumable.close()),
        () => server.shutdown(),
        async () => await httpServer?.shutdown(),
        async () => await engine?.close(),
        async () => await parts.canary?.close(),
        () => parts.admission.close(),
        () => Promise.resolve(modelClient.close()),
        () => Promise.resolve(memoryTrim.close()),
      ],
      reporter,
      metrics: parts.metrics,
    });
    if (options.handleSignals) {
      stopOnSignals(shutdown, finished, env.EDGEWORKER_DRAIN_SECONDS);
    }
    memoryTrim.start();
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

/** The plain-HTTP port that serves only `/session/end` (Vast's second port). */
function openSessionEndPort(
  env: WorkerEnv,
  options: WorkerStartOptions,
  parts: WorkerParts,
  limits: ReturnType<typeof connectionTimeouts>,
): Server | undefined {
  const port = options.httpPort === false
    ? undefined
    : options.httpPort ?? env.WORKER_HTTP_PORT ?? env.WORKER_PORT + 1;
  if (port === undefined) return undefined;
  return listen(
    { port, hostname: env.EDGEWORKER_HOST, ...limits },
    sessionEndApp({
      sessions: parts.sessions,
      maxBodyBytes: env.EDGEWORKER_MAX_BODY_BYTES,
    }).fetch,
    "WORKER_HTTP_PORT (serves /session/end)",
  );
}

/** Raises the open-file limit where it may; says when it stays low. */
function logFdLimit(): void {
  const limit = raiseFdLimit();
  if (limit?.raisedFrom !== undefined) {
    log.info("Open-file limit raised from {from} to {to}", {
      from: limit.raisedFrom,
      to: limit.soft,
    });
  }
  if (limit && limit.soft < 4096) {
    log.warn(
      "Open-file limit is {soft}: the worker can hold about that many connections; raise it (ulimit -n $(ulimit -Hn)) before starting",
      { soft: limit.soft },
    );
  }
}

/** SIGTERM/SIGINT start the drain; the listeners go once the worker stopped. */
function stopOnSignals(
  shutdown: (reason: string) => Promise<void>,
  finished: Promise<void>,
  drainSeconds: number,
): void {
  const onSignal = (name: string) => () => {
    log.info("{signal} received: draining for up to {s}s", {
      signal: name,
      s: drainSeconds,
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

/** Loads the autoscaler key in the background; errors become the worker's. */
function loadKey(
  env: WorkerEnv,
  parts: {
    reportAddrs: string[];
    verifier: SignatureVerifier;
    lifecycle: Lifecycle;
  },
  signal: AbortSignal,
): Promise<void> {
  const { reportAddrs: addrs, verifier, lifecycle } = parts;
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
