/**
 * A handler config turned into what the request path calls: the upstream
 * URL, the safe workload calculator and the request parser.
 *
 * @module
 */
import {
  DEFAULT_TIMEOUTS,
  type Payload,
  type RemoteFunction,
  type ResolvedHandlerConfig,
  type ResponseGenerator,
  type TimeoutsConfig,
  type WorkloadCalculator,
} from "../config/schemas.ts";
import type { RequestLimits } from "./ticket.ts";
import { workloadOf } from "./workload.ts";

/** A handler ready for the request path. */
export interface CompiledHandler {
  readonly route: string;
  readonly upstreamUrl: string;
  readonly workload: WorkloadCalculator;
  readonly parse: (payload: Payload) => Payload;
  /**
   * True when `parse` leaves the payload as the client sent it: its JSON
   * text is then forwarded as received, with no re-serialization.
   */
  readonly forwardsAsSent: boolean;
  readonly responseGenerator?: ResponseGenerator;
  /** Set when the worker answers itself instead of the model server. */
  readonly remoteFunction?: RemoteFunction;
  readonly maxQueueTime: number | null;
  /** Queue time and timeouts of one request, resolved. */
  readonly limits: RequestLimits;
  readonly config: ResolvedHandlerConfig;
}

/** The limits of a handler: its own timeouts, else the worker's, else the defaults. */
export function resolveLimits(
  config: ResolvedHandlerConfig,
  workerTimeouts: TimeoutsConfig = {},
): RequestLimits {
  const pick = (key: keyof TimeoutsConfig): number | null => {
    const own = config.timeouts?.[key];
    if (own !== undefined) return own;
    const worker = workerTimeouts[key];
    return worker !== undefined ? worker : DEFAULT_TIMEOUTS[key];
  };
  return {
    maxQueueTime: config.maxQueueTime,
    firstByte: pick("firstByte"),
    idle: pick("idle"),
    total: pick("total"),
  };
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
  config: ResolvedHandlerConfig,
  modelServerUrl: string,
  workerTimeouts?: TimeoutsConfig,
): CompiledHandler {
  const base = modelServerUrl.replace(/\/+$/, "");
  const forwardsAsSent = !config.requestParser && !config.unwrapInput;
  const parse = config.requestParser ??
    (config.unwrapInput ? unwrapInput : (p: Payload) => p);
  return {
    forwardsAsSent,
    route: config.route,
    upstreamUrl: base + (config.upstreamRoute ?? config.route),
    workload: workloadOf(config.workload, config.route),
    parse,
    responseGenerator: config.responseGenerator,
    remoteFunction: config.remoteFunction,
    maxQueueTime: config.maxQueueTime,
    limits: resolveLimits(config, workerTimeouts),
    config,
  };
}
