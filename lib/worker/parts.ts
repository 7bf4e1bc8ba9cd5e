/**
 * Every part of a running worker, built once the listening port is known
 * (the public URL a signature may be checked against and the client watch
 * need it): the books, the traffic rules, the model watchers, metrics and
 * reporting. Nothing here starts a loop; `worker.ts` starts them in order.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { SignatureVerifier } from "../auth/signatures.ts";
import { diskUsedGb } from "../autoscaler/disk_usage.ts";
import { Reporter } from "../autoscaler/reporter.ts";
import {
  envConcurrency,
  envResumeBuffer,
  envStallRule,
  envTimeouts,
  publicUrl,
  reportAddresses,
  reportIdentity,
  type WorkerEnv,
} from "../config/env.ts";
import type { ResolvedWorkerConfig } from "../config/schemas.ts";
import { WorkerMetrics } from "../metrics/worker_metrics.ts";
import { GenerationCanary } from "../model/canary.ts";
import { ModelClient } from "../model/model_client.ts";
import { EngineMetricsScraper } from "../model/engine_metrics.ts";
import { HealthLevels } from "../model/health_levels.ts";
import { Lifecycle } from "../model/lifecycle.ts";
import { StartupTimeline } from "../model/timeline.ts";
import { QueuePlan } from "../traffic/admission.ts";
import { Capacity } from "../traffic/capacity.ts";
import { ClientWatch } from "../traffic/client_gone.ts";
import { type CompiledHandler, compileHandler } from "../traffic/handlers.ts";
import { Ledger } from "../traffic/ledger.ts";
import { ResumeRegistry } from "../traffic/resumable.ts";
import { SessionStore } from "../traffic/sessions.ts";
import { Admission } from "../traffic/ticket.ts";

const log = getLogger(["edgeworker", "worker"]);

/** Test hooks: faster loops. Each unset one keeps its production value. */
export interface WorkerTimings {
  /** Report tick. @default {1000} */
  reportTickMs?: number;
  /** Report when nothing changed. @default {10000} */
  heartbeatMs?: number;
  /** Reporter's per-try answer timeout. @default {60000} */
  reportTimeoutMs?: number;
  /** Expired-session sweep. @default {5000} */
  sessionReapMs?: number;
  /** Model log poll (beside file events). */
  logPollMs?: number;
  /** Health probe interval while loading. @default {1000} */
  probeIntervalMs?: number;
}

/** The parts of one worker. */
export interface WorkerParts {
  /** The one client to the model server: requests, benchmark, canary. */
  modelClient: ModelClient;
  ledger: Ledger;
  lifecycle: Lifecycle;
  capacity: Capacity;
  handlers: CompiledHandler[];
  queues: QueuePlan;
  admission: Admission;
  verifier: SignatureVerifier;
  sessions: SessionStore;
  /** Resumable streams (handlers with `resumeSeconds`). */
  resumable: ResumeRegistry;
  engine: EngineMetricsScraper | undefined;
  metrics: WorkerMetrics;
  /** The three health levels. */
  levels: HealthLevels;
  /** How long each startup phase took. */
  timeline: StartupTimeline;
  /** Only when the config's canary has an idle time. */
  canary: GenerationCanary | undefined;
  /** Only when `REPORT_ADDR` is set. */
  reporter: Reporter | undefined;
  /** Autoscaler base URLs (`REPORT_ADDR`). */
  reportAddrs: string[];
  /** This worker's public URL, as reported. */
  publicUrl: string;
}

/** Builds the parts of a worker listening on `port`. */
export function buildParts(
  config: ResolvedWorkerConfig,
  env: WorkerEnv,
  port: number,
  timings: WorkerTimings,
): WorkerParts {
  const reportAddrs = reportAddresses(env);
  // Without an autoscaler nobody acknowledges finished records: keep few.
  const ledger = new Ledger({
    maxFinished: reportAddrs.length > 0 ? 100_000 : 1000,
  });
  const startedAt = Date.now() - performance.now();
  const lifecycle = new Lifecycle({ startedAt });
  const timeline = new StartupTimeline({ startedAt });
  timeline.followFirstRequest(ledger);
  const capacity = new Capacity();
  capacity.follow(ledger);
  const timeouts = { ...config.timeouts, ...envTimeouts(env) };
  const handlers = config.handlers.map((h) =>
    compileHandler(h, config.modelServerUrl, timeouts)
  );
  const queues = new QueuePlan();
  for (const h of config.handlers) {
    queues.add(h.route, envConcurrency(h, env));
  }
  const admission = new Admission({
    ledger,
    clientWatch: new ClientWatch({ localPort: port }),
    stall: envStallRule(env),
  });
  const modelClient = new ModelClient({
    idleSeconds: env.EDGEWORKER_MODEL_IDLE_SECONDS,
  });
  const canaryConfig = config.canary;
  const levels = new HealthLevels({
    engine: config.modelHealthUrl !== undefined,
    generation: canaryConfig?.idleSeconds != null,
  });
  const canary = canaryConfig && canaryConfig.idleSeconds !== null
    ? new GenerationCanary({
      config: { ...canaryConfig, idleSeconds: canaryConfig.idleSeconds },
      url: handlers.find((h) => h.route === canaryConfig.route)!.upstreamUrl,
      client: modelClient,
      ledger,
      lifecycle,
      levels,
    })
    : undefined;

  if (env.UNSECURED) {
    log.warn(
      "UNSECURED=true: signatures are NOT checked; anyone can use this worker",
    );
  }
  const verifier = new SignatureVerifier({
    format: env.EDGEWORKER_SIGNATURE_FORMAT,
    unsecured: env.UNSECURED,
    expectedUrl: env.EDGEWORKER_CHECK_URL ? publicUrl(env, port) : undefined,
  });
  const sessions = new SessionStore({
    ledger,
    maxSessions: config.maxSessions,
    modelServerUrl: config.modelServerUrl,
    reapIntervalMs: timings.sessionReapMs,
  });
  const resumable = new ResumeRegistry({
    ...config.resumeBuffer,
    ...envResumeBuffer(env),
  });
  const engine = config.engineMetrics
    ? new EngineMetricsScraper({
      url: config.modelServerUrl.replace(/\/+$/, "") +
        config.engineMetrics.path,
      intervalMs: config.engineMetrics.intervalSeconds * 1000,
      kind: config.engineMetrics.kind,
      // The engine's own queue steers adaptive slot counts.
      onSnapshot: (snap) => queues.engine(snap.running, snap.waiting),
    })
    : undefined;

  const identity = reportIdentity(env, port);
  const reporter = reportAddrs.length === 0 ? undefined : new Reporter({
    reportAddrs,
    ledger,
    identity,
    state: () => ({
      loadtime: lifecycle.loadtime,
      errorMsg: lifecycle.errorMsg ||
        (lifecycle.state === "draining" ? "Worker shutting down" : ""),
      maxPerf: capacity.benchmark,
    }),
    diskUsageGb: () => diskUsedGb("/"),
    tickMs: timings.reportTickMs,
    heartbeatMs: timings.heartbeatMs,
    timeoutMs: timings.reportTimeoutMs,
  });
  const metrics = new WorkerMetrics(ledger, {
    lifecycle: () => lifecycle.state,
    benchmarkThroughput: () => capacity.benchmark,
    liveThroughput: () => capacity.live ?? 0,
    reports: () => reporter?.stats ?? {},
    engine: engine ? () => engine.snapshot() : undefined,
    resume: () => resumable.stats,
    concurrency: () => queues.queues(),
  });
  return {
    ledger,
    lifecycle,
    capacity,
    handlers,
    queues,
    admission,
    verifier,
    sessions,
    resumable,
    engine,
    metrics,
    levels,
    timeline,
    canary,
    modelClient,
    reporter,
    reportAddrs,
    publicUrl: identity.url,
  };
}
