/**
 * Workload: how much work a request is, in the units the benchmark measures
 * (`max_perf` is workload units per second).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type {
  Payload,
  ResolvedDeclarativeWorkload,
  WorkloadCalculator,
} from "../config/schemas.ts";

/** Workload used when a calculator fails, as the Python worker does. */
export const DEFAULT_WORKLOAD = 100;

/**
 * Largest workload one request may carry: a million requested tokens is
 * past any context window served today, and far above any real image or
 * video job's units. A client's number above it (`max_tokens: 1e308`) is
 * capped, so sums of workloads stay finite and cannot stick at Infinity
 * or turn into NaN.
 */
export const MAX_WORKLOAD = 1_000_000;

/** A workload made finite, non-negative and at most {@linkcode MAX_WORKLOAD}. */
export function clampWorkload(value: number): number {
  if (!(value > 0)) return 0; // NaN and negatives
  return value > MAX_WORKLOAD ? MAX_WORKLOAD : value;
}

const log = getLogger(["edgeworker", "workload"]);

/** Reads a dotted path (`parameters.max_new_tokens`) from a payload. */
export function readPath(payload: unknown, path: string): unknown {
  let value: unknown = payload;
  for (const key of path.split(".")) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/** Characters of text in a value: strings, arrays, chat messages, parts. */
export function textLength(value: unknown): number {
  if (typeof value === "string") return value.length;
  if (Array.isArray(value)) {
    let n = 0;
    for (const item of value) n += textLength(item);
    return n;
  }
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    // Chat messages carry `content`; content parts carry `text`.
    return textLength(obj.content) + textLength(obj.text);
  }
  return 0;
}

/**
 * Estimates tokens from text length (no tokenizer download at run time):
 * about 4 characters per token for English BPE vocabularies.
 */
export function estimateTokens(value: unknown, charsPerToken = 4): number {
  const chars = textLength(value);
  return chars === 0 ? 0 : Math.ceil(chars / charsPerToken);
}

/** Turns a declarative rule into a calculator. */
export function compileWorkload(
  rule: ResolvedDeclarativeWorkload,
): WorkloadCalculator {
  switch (rule.kind) {
    case "constant":
      return () => rule.value;
    case "field":
      return (payload) => {
        const v = readPath(payload, rule.path);
        return v === undefined || v === null ? rule.default : Number(v);
      };
    case "tokens":
      return (payload) => {
        let input = 0;
        for (const f of rule.fields) {
          input += estimateTokens(readPath(payload, f), rule.charsPerToken);
        }
        let output = rule.defaultOutput;
        for (const f of rule.outputFields) {
          const v = readPath(payload, f);
          if (v !== undefined && v !== null) {
            output = Number(v);
            break;
          }
        }
        return input + output;
      };
  }
}

/**
 * Wraps a calculator so it never breaks a request: a throw, NaN or a
 * negative number becomes {@linkcode DEFAULT_WORKLOAD}, logged with why; a
 * number above {@linkcode MAX_WORKLOAD} (infinity included) is capped.
 */
export function safeWorkload(
  calculator: WorkloadCalculator,
  route: string,
): WorkloadCalculator {
  return function workload(payload: Payload): number {
    let value: unknown;
    try {
      value = calculator(payload);
    } catch (e) {
      log.warn("Workload calculator of {route} threw: {error}; using {used}", {
        route,
        error: e instanceof Error ? e.message : String(e),
        used: DEFAULT_WORKLOAD,
      });
      return DEFAULT_WORKLOAD;
    }
    if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
      log.warn(
        "Workload calculator of {route} returned {value}, not a non-negative number; using {used}",
        { route, value: String(value), used: DEFAULT_WORKLOAD },
      );
      return DEFAULT_WORKLOAD;
    }
    return clampWorkload(value);
  };
}

/** The calculator of a handler's `workload` setting, made safe. */
export function workloadOf(
  spec: WorkloadCalculator | ResolvedDeclarativeWorkload,
  route: string,
): WorkloadCalculator {
  const calc = typeof spec === "function" ? spec : compileWorkload(spec);
  return safeWorkload(calc, route);
}
