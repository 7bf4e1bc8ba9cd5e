/**
 * A handler config turned into what the request path calls: the upstream
 * URL, the safe workload calculator and the request parser.
 *
 * @module
 */
import type {
  HandlerConfig,
  Payload,
  ResponseGenerator,
  WorkloadCalculator,
} from "./config.ts";
import { workloadOf } from "./workload.ts";

/** A handler ready for the request path. */
export interface CompiledHandler {
  readonly route: string;
  readonly upstreamUrl: string;
  readonly workload: WorkloadCalculator;
  readonly parse: (payload: Payload) => Payload;
  readonly responseGenerator?: ResponseGenerator;
  readonly maxQueueTime: number | null;
  readonly config: HandlerConfig;
}

/** Forwards `payload.input` when present (the old `{"input": {...}}` shape). */
export function unwrapInput(payload: Payload): Payload {
  const input = payload.input;
  return input !== null && typeof input === "object" && !Array.isArray(input)
    ? input as Payload
    : payload;
}

/** Compiles one handler against the model server's base URL. */
export function compileHandler(
  config: HandlerConfig,
  modelServerUrl: string,
): CompiledHandler {
  const base = modelServerUrl.replace(/\/+$/, "");
  const parse = config.requestParser ??
    (config.unwrapInput ? unwrapInput : (p: Payload) => p);
  return {
    route: config.route,
    upstreamUrl: base + (config.upstreamRoute ?? config.route),
    workload: workloadOf(config.workload, config.route),
    parse,
    ...(config.responseGenerator
      ? { responseGenerator: config.responseGenerator }
      : {}),
    maxQueueTime: config.maxQueueTime,
    config,
  };
}
