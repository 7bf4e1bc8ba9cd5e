/**
 * edgeworker: a serverless GPU worker, wire-compatible with Vast.ai's
 * PyWorker. A custom worker is a few lines:
 *
 * ```ts ignore
 * import { Worker } from "./mod.ts";
 * await new Worker({
 *   modelServerUrl: "http://127.0.0.1:18000",
 *   handlers: [{
 *     route: "/v1/completions",
 *     allowParallelRequests: true,
 *     workload: (payload) => Number(payload.max_tokens ?? 16),
 *   }],
 * }).run();
 * ```
 *
 * The config types carry the names of Vast's Python SDK
 * ({@linkcode WorkerConfig}, {@linkcode HandlerConfig},
 * {@linkcode BenchmarkConfig}, {@linkcode LogActionConfig}); validation
 * gives the `Resolved*` forms. The client is here too, and alone (without
 * the worker's dependencies) at `./client`.
 *
 * @module
 */
export { Worker } from "./lib/worker/worker.ts";
export type { RunningWorker, WorkerStartOptions } from "./lib/worker/worker.ts";
export type { WorkerTimings } from "./lib/worker/parts.ts";
export type {
  AutoConcurrencyConfig,
  BenchmarkConfig,
  CanaryConfig,
  ConstantWorkload,
  DeclarativeWorkload,
  EngineMetricsConfig,
  FailureBody,
  FieldWorkload,
  HandlerConfig,
  HealthcheckConfig,
  LifecycleHook,
  LifecycleStop,
  LoadProbeConfig,
  LogActionConfig,
  LogPattern,
  Payload,
  ReadinessMode,
  RemoteFunction,
  RemoteFunctionContext,
  RequestParser,
  ResolvedAutoConcurrencyConfig,
  ResolvedBenchmarkConfig,
  ResolvedCanaryConfig,
  ResolvedDeclarativeWorkload,
  ResolvedEngineMetricsConfig,
  ResolvedFieldWorkload,
  ResolvedHandlerConfig,
  ResolvedHealthcheckConfig,
  ResolvedLoadProbeConfig,
  ResolvedLogActionConfig,
  ResolvedResumeBufferConfig,
  ResolvedTokensWorkload,
  ResolvedWorkerConfig,
  ResponseContext,
  ResponseGenerator,
  ResumeBufferConfig,
  TimeoutsConfig,
  TokensWorkload,
  WorkerConfig,
  WorkloadCalculator,
} from "./lib/config/types.ts";
export {
  ConfigError,
  loadWorkerConfigFile,
  parseWorkerConfig,
  parseWorkerConfigYaml,
  workerConfigJsonSchema,
} from "./lib/config/file.ts";
export { estimateTokens } from "./lib/traffic/workload.ts";
export * from "./client.ts";
export { findPreset, PRESETS } from "./workers/mod.ts";
export type { EnvVars, Preset } from "./workers/mod.ts";
