/**
 * Learns the truth about the model server and drives the lifecycle:
 * loading (the config's lifecycle hook, then log line or the load probe,
 * and/or health URL, with a timeout), benchmarking
 * (cached in `.has_benchmark`), ready; error on fatal log lines, failed
 * benchmarks and failing health probes, with recovery from the latter.
 * Error lines go through the phase rule of `log_errors.ts`; supervisord's
 * own log is tailed too when the config names the program.
 *
 * Longer than most modules: one orchestration per readiness mode, with the benchmark and health hand-over they share.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { BenchmarkError } from "./benchmark.ts";
import type { BenchmarkMode } from "../config/env.ts";
import {
  type LifecycleHook,
  type LifecycleStop,
  type ReadinessMode,
  readinessWaitsFor,
  type ResolvedWorkerConfig,
} from "../config/schemas.ts";
import type { CompiledHandler } from "../traffic/handlers.ts";
import { HealthMonitor, probe } from "./health.ts";
import type { HealthLevels } from "./health_levels.ts";
import type { Lifecycle } from "./lifecycle.ts";
import {
  type LogEvent,
  LogMonitor,
  type LogMonitorOptions,
} from "./log_monitor.ts";
import { LogErrors, type LogPhase, type LogSource } from "./log_errors.ts";
import { supervisorActions } from "./supervisor_log.ts";
import { measureMaxPerf } from "./startup_benchmark.ts";
import type { ModelClient } from "./model_client.ts";
import type { StartupTimeline } from "./timeline.ts";
import { deadline, delay } from "../std/async.ts";
import { waitForLoadProbe } from "./load_probe.ts";
import {
  healthUrlOf,
  LOADING_WARN_MS,
  logActionsOf,
  modelUrlOf,
  readinessModeOf,
  readinessTimeoutOf,
} from "./readiness_config.ts";

const log = getLogger(["edgeworker", "readiness"]);

/** Options of {@linkcode Readiness}. */
export interface ReadinessOptions {
  config: ResolvedWorkerConfig;
  handlers: readonly CompiledHandler[];
  lifecycle: Lifecycle;
  /** Where the log monitor starts reading. */
  logFrom: NonNullable<LogMonitorOptions["from"]>;
  benchmarkMode: BenchmarkMode;
  /** Path of the `.has_benchmark` cache. */
  benchmarkFile: string;
  /** Resolves once requests can be verified (public key loaded). */
  keyReady: () => Promise<void>;
  /** Receives the benchmark throughput (`max_perf`). */
  onMaxPerf: (value: number) => void;
  /** The client requests take to the model server; the benchmark uses it. */
  modelClient: ModelClient;
  /** Milliseconds between readiness probes of the health URL. */
  probeIntervalMs?: number;
  /** Log-monitor stat poll, in ms. */
  logPollMs?: number;
  /** How often a long load is logged. @default {LOADING_WARN_MS} */
  loadingWarnMs?: number;
  /** Records how long each startup phase took. */
  timeline?: StartupTimeline;
  /** Receives every health-URL probe's result. */
  levels?: HealthLevels;
  /** supervisord's own log, tailed when the config names a program. */
  supervisorLog?: string;
  /** Told of every error line seen, fatal or counted. */
  onLogError?: (source: LogSource, phase: LogPhase) => void;
}

/** Drives the lifecycle from the model server's log, health and benchmark. */
export class Readiness {
  #o: ReadinessOptions;
  #abort = new AbortController();
  #monitor: LogMonitor | undefined;
  #health: HealthMonitor | undefined;
  #loaded: PromiseWithResolvers<void> = Promise.withResolvers();
  #sequence: Promise<void> | undefined;
  /** Ends the load probe once loaded (or at close). */
  #loadProbeStop = new AbortController();
  #loadProbing: Promise<void> | undefined;
  /** The lifecycle hook's stop function, once the hook has resolved. */
  #hookStop: Promise<LifecycleStop | undefined> | undefined;
  #hookSettled = false;
  #supervisor: LogMonitor | undefined;
  #errors: LogErrors | undefined;

  /** Creates the orchestrator; nothing runs before {@linkcode start}. */
  constructor(options: ReadinessOptions) {
    this.#o = options;
  }

  /** Starts watching the model server. */
  async start(): Promise<void> {
    const { config, lifecycle } = this.#o;
    const mode = readinessModeOf(config);
    this.#errors = new LogErrors({
      lifecycle,
      onLogError: this.#o.onLogError,
    });
    const poll = this.#o.logPollMs ? { pollIntervalMs: this.#o.logPollMs } : {};
    // The log is tailed whenever there is one: even when readiness comes
    // from the health URL, its fatal lines must still count.
    const timeline = this.#o.timeline;
    const waitsForLog = readinessWaitsFor(mode).log;
    if (config.modelLogFile) {
      const path = config.modelLogFile;
      timeline?.begin("log_file", path);
      this.#monitor = new LogMonitor({
        path,
        onOpen: () => {
          timeline?.end("log_file");
          if (waitsForLog) {
            timeline?.begin("model_loading", "waiting for the load line");
          }
        },
        from: this.#o.logFrom,
        ...poll,
        actions: logActionsOf(config),
        onEvent: (e) => this.#onLogEvent(e, "model"),
        onLine: (line) => this.#errors?.line(line),
      });
      await this.#monitor.start();
    }
    if (config.supervisorProgram && this.#o.supervisorLog) {
      // From its end: the file holds every earlier boot's lines too.
      this.#supervisor = new LogMonitor({
        path: this.#o.supervisorLog,
        from: "end",
        ...poll,
        actions: supervisorActions(config.supervisorProgram),
        onEvent: (e) => this.#onLogEvent(e, "supervisor"),
      });
      await this.#supervisor.start();
    }
    lifecycle.to("loading", this.#describeWait(mode));
    if (config.loadProbe && waitsForLog) {
      this.#loadProbing = this.#probeUntilLoaded(config.loadProbe.urls);
    }
    this.#sequence = this.#run(mode).catch((e) => {
      if (!this.#abort.signal.aborted) {
        lifecycle.fail(e instanceof Error ? e.message : String(e));
      }
    });
  }

  /**
   * Stops every probe, watcher and benchmark in flight, then runs the
   * lifecycle hook's stop function (one still starting runs it when done).
   */
  async close(): Promise<void> {
    this.#abort.abort();
    this.#loadProbeStop.abort();
    await this.#loadProbing;
    this.#errors?.close();
    await this.#monitor?.close();
    await this.#supervisor?.close();
    await this.#health?.close();
    await this.#sequence;
    const stopping = this.#hookStop?.then(runStop);
    if (this.#hookSettled) await stopping;
  }

  #onLogEvent(e: LogEvent, source: LogSource): void {
    if (e.kind === "info") log.info("Model: {line}", { line: e.line });
    else if (e.kind === "load") this.#onLoadLine(e.line);
    else this.#errors?.event(e, source);
  }

  #onLoadLine(line: string): void {
    const { lifecycle } = this.#o;
    log.info("Model load line: {line}", { line });
    this.#loadProbeStop.abort();
    this.#o.timeline?.end("model_loading", "load line seen");
    this.#loaded.resolve();
    // A load line after a (non-fatal) error means the model server restarted.
    if (lifecycle.state === "error" && !lifecycle.fatal && this.#sequence) {
      this.#sequence = this.#sequence.then(() => this.#restarted()).catch(
        (e) => {
          if (!this.#abort.signal.aborted) {
            lifecycle.fail(e instanceof Error ? e.message : String(e));
          }
        },
      );
    }
  }

  /** After the load line of a restarted model server. */
  async #restarted(): Promise<void> {
    const url = healthUrlOf(this.#o.config);
    // It may print its load line before its health check passes.
    if (url) await this.#await([], true, `waiting for 200 from ${url}`);
    // The health monitor may have seen it recover first.
    if (this.#o.lifecycle.ready) return;
    await this.#prepare();
  }

  #describeWait(mode: ReadinessMode): string {
    const { config } = this.#o;
    if (config.lifecycle) {
      return `running the lifecycle hook, then ${this.#describeMode(mode)}`;
    }
    return this.#describeMode(mode);
  }

  #describeMode(mode: ReadinessMode): string {
    const { config } = this.#o;
    const probe = config.loadProbe
      ? ` (or 200 from ${
        config.loadProbe.urls.map((u) => modelUrlOf(config, u)).join(" and ")
      })`
      : "";
    const load = config.logActions.onLoad.map(String).join(" | ") + probe;
    switch (mode) {
      case "logs":
        return `waiting for "${load}" in ${config.modelLogFile}`;
      case "healthcheck":
        return `waiting for 200 from ${healthUrlOf(config)}`;
      case "both":
        return `waiting for "${load}" in ${config.modelLogFile} and 200 from ${
          healthUrlOf(config)
        }`;
      default:
        return "no model server to wait for";
    }
  }

  async #run(mode: ReadinessMode): Promise<void> {
    const hook = this.#o.config.lifecycle;
    if (hook && !(await this.#runHook(hook))) return;
    const waits = readinessWaitsFor(mode);
    try {
      await this.#await(
        waits.log ? [this.#loaded.promise] : [],
        waits.health,
        this.#describeMode(mode),
      );
    } catch (e) {
      if (this.#abort.signal.aborted || mode !== "healthcheck") throw e;
      // Report the timeout, but keep probing: a model server that comes up
      // late is still used (in log modes a late load line does the same).
      this.#o.lifecycle.fail(e instanceof Error ? e.message : String(e));
      await this.#firstHealthy(
        healthUrlOf(this.#o.config)!,
        this.#abort.signal,
      );
      if (this.#stopped()) return;
      log.info("Model server answered after the readiness timeout");
    }
    await this.#prepare();
  }

  /**
   * Waits for `waits` and, if `health`, the first 200 from the health URL,
   * up to the readiness timeout; probing stops when the wait ends.
   */
  async #await(
    waits: Promise<void>[],
    health: boolean,
    what: string,
  ): Promise<void> {
    const { config } = this.#o;
    const stopProbing = new AbortController();
    let probing: Promise<void> | undefined;
    if (health) {
      this.#o.timeline?.begin("health", healthUrlOf(config));
      probing = this.#firstHealthy(
        healthUrlOf(config)!,
        AbortSignal.any([this.#abort.signal, stopProbing.signal]),
      );
      waits = [...waits, probing];
    }
    try {
      const limit = readinessTimeoutOf(config);
      const warn = setInterval(() => {
        log.warn("Still loading after {s} s: {what}", {
          s: Math.round(this.#o.lifecycle.loadingSeconds ?? 0),
          what,
        });
      }, this.#o.loadingWarnMs ?? LOADING_WARN_MS);
      try {
        await this.#withTimeout(
          Promise.all(waits),
          limit,
          `Model server not ready after ${limit} s (${what})`,
        );
      } finally {
        clearInterval(warn);
      }
    } finally {
      stopProbing.abort();
      await probing;
    }
  }

  /**
   * The lifecycle hook (Python's `lifecycle.__aenter__`), bounded by the
   * readiness timeout. A throw or a timeout is a fatal error, as in Python
   * (`Lifecycle startup failed: ...`). False when readiness must stop.
   */
  async #runHook(hook: LifecycleHook): Promise<boolean> {
    const { config, lifecycle } = this.#o;
    const started = Promise.resolve().then(() =>
      hook({ signal: this.#abort.signal })
    );
    this.#hookStop = started.then(
      (stop) => {
        this.#hookSettled = true;
        return typeof stop === "function" ? stop : undefined;
      },
      () => {
        this.#hookSettled = true;
        return undefined;
      },
    );
    const limit = readinessTimeoutOf(config);
    try {
      await this.#withTimeout(
        started,
        limit,
        `not done after ${limit} s`,
      );
    } catch (e) {
      if (this.#abort.signal.aborted) return false;
      lifecycle.fail(
        `Lifecycle startup failed: ${
          e instanceof Error ? e.message : String(e)
        }`,
        { fatal: true },
      );
      return false;
    }
    log.info("Lifecycle hook done");
    return !this.#stopped();
  }

  /** Benchmark, key, ready, then health monitoring. */
  async #prepare(): Promise<void> {
    const { lifecycle } = this.#o;
    if (this.#stopped()) return;
    const timeline = this.#o.timeline;
    lifecycle.to("benchmarking", "model loaded");
    timeline?.begin("benchmark");
    const perf = await this.#benchmark();
    if (this.#stopped() || perf === undefined) return;
    this.#o.onMaxPerf(perf);
    timeline?.begin("public_key");
    await this.#withTimeout(
      this.#o.keyReady(),
      60,
      "Public key not loaded after 60 s",
    );
    timeline?.end("public_key");
    if (this.#stopped()) return;
    lifecycle.to("ready", `max_perf ${perf.toFixed(2)}`);
    timeline?.ready(lifecycle.loadtime);
    this.#startHealthMonitor();
  }

  #stopped(): boolean {
    const { lifecycle } = this.#o;
    return this.#abort.signal.aborted ||
      (lifecycle.state === "error" && lifecycle.fatal);
  }

  async #benchmark(): Promise<number | undefined> {
    const { benchmarkMode, benchmarkFile, handlers, lifecycle } = this.#o;
    try {
      return await measureMaxPerf(handlers, {
        mode: benchmarkMode,
        cacheFile: benchmarkFile,
        signal: this.#abort.signal,
        client: this.#o.modelClient,
        onSource: (source) => this.#o.timeline?.end("benchmark", source),
        onRound: (r) => this.#o.timeline?.round(r),
      });
    } catch (e) {
      if (this.#abort.signal.aborted) return undefined;
      const why = e instanceof BenchmarkError
        ? e.message
        : `Benchmark failed: ${e instanceof Error ? e.message : String(e)}`;
      lifecycle.fail(why);
      return undefined;
    }
  }

  /** Marks the model loaded once the load probe's URLs all answer. */
  async #probeUntilLoaded(urls: readonly string[]): Promise<void> {
    const { config } = this.#o;
    const answered = await waitForLoadProbe(
      urls.map((u) => modelUrlOf(config, u)),
      config.loadProbe!,
      this.#loadProbeStop.signal,
    );
    if (answered) this.#loaded.resolve();
  }

  async #firstHealthy(url: string, signal: AbortSignal): Promise<void> {
    const { config } = this.#o;
    const interval = this.#o.probeIntervalMs ?? 1000;
    let last = "";
    while (!signal.aborted) {
      const r = await probe(
        url,
        config.healthcheck.timeoutSeconds * 1000,
        signal,
      );
      if (signal.aborted) return;
      this.#o.levels?.engine(r);
      if (r.ok) {
        this.#o.timeline?.end("health", "first 200");
        return;
      }
      if (r.reason !== last) {
        log.info("Waiting for {url}: {reason}", { url, reason: r.reason });
        last = r.reason;
      }
      await delay(interval, { signal }).catch(() => {});
    }
  }

  #startHealthMonitor(): void {
    const { config, lifecycle } = this.#o;
    const url = healthUrlOf(config);
    if (!url || this.#health) return;
    const h = config.healthcheck;
    this.#health = new HealthMonitor({
      url,
      intervalMs: h.intervalSeconds * 1000,
      timeoutMs: h.timeoutSeconds * 1000,
      failureThreshold: h.failureThreshold,
      onProbe: (r) => this.#o.levels?.engine(r),
      onUnhealthy: (reason) => lifecycle.degrade("health check", reason),
      onRecovered: () => lifecycle.restore("health check"),
    });
    this.#health.start();
  }

  /** `p`, or an error saying `message` once `seconds` have passed. */
  async #withTimeout<T>(
    p: Promise<T>,
    seconds: number | null,
    message: string,
  ): Promise<T> {
    // No limit still ends at shutdown (the longest timer Deno arms).
    const ms = seconds === null ? 2 ** 31 - 1 : seconds * 1000;
    try {
      return await deadline(p, ms, { signal: this.#abort.signal });
    } catch (e) {
      const late = e instanceof DOMException && e.name === "TimeoutError";
      throw late ? new Error(message) : e;
    }
  }
}

/** Runs a lifecycle hook's stop function; its failure is logged, not thrown. */
async function runStop(stop: LifecycleStop | undefined): Promise<void> {
  if (!stop) return;
  try {
    await stop();
  } catch (e) {
    log.warn("Lifecycle stop failed: {error}", {
      error: e instanceof Error ? e.message : String(e),
    });
  }
}
