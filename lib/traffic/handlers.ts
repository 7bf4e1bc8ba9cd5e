/**
 * A handler config turned into what the request path calls: the upstream
 * URL, the safe workload calculator, the request parser and the check of
 * answers that report a failure under HTTP 2xx.
 *
 * @module
 */
import {
  DEFAULT_TIMEOUTS,
  type FailureBody,
  type Payload,
  type RemoteFunction,
  type ResolvedHandlerConfig,
  type ResponseGenerator,
  type TimeoutsConfig,
  type WorkloadCalculator,
} from "../config/schemas.ts";
import type { RequestLimits } from "./ticket.ts";
import { readPath, workloadOf } from "./workload.ts";

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
  /**
   * Why an answer body (its text) reports a failure, or
   * `undefined` when it is not; absent when the handler has no
   * `failureBody`.
   */
  readonly failureOf?: (body: string) => string | undefined;
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

/**
 * The check of {@linkcode FailureBody}: a JSON object whose value at
 * `path` is one of `values` fails, with a reason naming both. A body that
 * is not JSON is not judged (it is the client's to read).
 */
export function failureCheck(
  rule: FailureBody,
): (body: string) => string | undefined {
  return (body) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return undefined;
    }
    const value = readPath(parsed, rule.path);
    if (value === undefined || !rule.values.includes(value as never)) {
      return undefined;
    }
    return `model server reported a failure: ${rule.path} ${
      JSON.stringify(value)
    }`;
  };
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
    ...(config.failureBody
      ? { failureOf: failureCheck(config.failureBody) }
      : {}),
    remoteFunction: config.remoteFunction,
    maxQueueTime: config.maxQueueTime,
    limits: resolveLimits(config, workerTimeouts),
    config,
  };
}
