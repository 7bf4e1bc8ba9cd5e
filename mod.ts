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
 * @module
 */
export { Worker } from "./lib/worker/worker.ts";
export type { RunningWorker, WorkerStartOptions } from "./lib/worker/worker.ts";
export {
  BenchmarkConfigSchema,
  DeclarativeWorkloadSchema,
  HandlerConfigSchema,
  LogActionConfigSchema,
  WorkerConfigSchema,
} from "./lib/config/schemas.ts";
export type {
  BenchmarkConfig,
  BenchmarkConfigInput,
  DeclarativeWorkload,
  HandlerConfig,
  HandlerConfigInput,
  LogActionConfig,
  LogActionConfigInput,
  Payload,
  RequestParser,
  ResponseGenerator,
  WorkerConfig,
  WorkerConfigInput,
  WorkloadCalculator,
} from "./lib/config/schemas.ts";
export {
  ConfigError,
  loadWorkerConfigFile,
  parseWorkerConfig,
  parseWorkerConfigYaml,
  workerConfigJsonSchema,
} from "./lib/config/file.ts";
export { estimateTokens } from "./lib/traffic/workload.ts";
export {
  EdgeworkerClient,
  EdgeworkerError,
  edgeworkerFetch,
  parseEventStream,
  Session,
} from "./client.ts";
export type {
  CreateSessionOptions,
  EdgeworkerClientOptions,
  EdgeworkerFetchOptions,
  RequestOptions,
} from "./client.ts";
export { findPreset, PRESETS } from "./workers/mod.ts";
export type { Preset } from "./workers/mod.ts";
