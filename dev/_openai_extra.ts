/**
 * The smaller vLLM pages for the dev stand-in: `/metrics` text, `/v1/models`
 * and embedding vectors.
 *
 * @module
 */

import { pythonFloatRepr } from "../lib/auth/python_json.ts";
import { randomHex } from "./_async.ts";
import type { TokenEngine } from "./_engine.ts";

/** vLLM's time-to-first-token buckets, in seconds. */
const TTFT_BUCKETS = [
  0.001,
  0.005,
  0.01,
  0.02,
  0.04,
  0.06,
  0.08,
  0.1,
  0.25,
  0.5,
  0.75,
  1.0,
  2.5,
  5.0,
  7.5,
  10.0,
  20.0,
  40.0,
  80.0,
  160.0,
  640.0,
  2560.0,
];

/** A Prometheus histogram with cumulative buckets. */
export class Histogram {
  #counts = new Array<number>(TTFT_BUCKETS.length).fill(0);
  #sum = 0;
  #count = 0;

  /** Records one observation (seconds). */
  observe(seconds: number): void {
    this.#sum += seconds;
    this.#count++;
    TTFT_BUCKETS.forEach((le, i) => {
      if (seconds <= le) this.#counts[i]++;
    });
  }

  /** Exposition lines for `name` with `labels` (`k="v",…`). */
  render(name: string, labels: string): string[] {
    const lines = TTFT_BUCKETS.map((le, i) =>
      `${name}_bucket{${labels},le="${pyFloat(le)}"} ${
        pyFloat(this.#counts[i])
      }`
    );
    lines.push(`${name}_bucket{${labels},le="+Inf"} ${pyFloat(this.#count)}`);
    lines.push(`${name}_count{${labels}} ${pyFloat(this.#count)}`);
    lines.push(`${name}_sum{${labels}} ${pyFloat(this.#sum)}`);
    return lines;
  }
}

/**
 * A number as Python's `prometheus_client` prints it: `repr(float)` (`1.0`,
 * `0.25`), but Go's exponent form from 1e6 up (`1234567.0` -> `1.234567e+06`).
 */
function pyFloat(n: number): string {
  const repr = pythonFloatRepr(n);
  const dot = repr.indexOf(".");
  if (!(n > 0) || dot <= 6) return repr;
  const digits = (repr.slice(0, dot) + repr.slice(dot + 1)).replace(/0+$/, "");
  const mantissa = `${digits[0]}.${digits.slice(1)}`.replace(/\.$/, "");
  return `${mantissa}e+0${dot - 1}`;
}

/** The `/metrics` page of vLLM (V1 engine metric names). */
export function vllmMetrics(
  model: string,
  engine: TokenEngine,
  ttft: Histogram,
): string {
  const labels = `engine="0",model_name="${model}"`;
  const metric = (
    name: string,
    type: string,
    help: string,
    value: number,
  ): string[] => [
    `# HELP ${name} ${help}`,
    `# TYPE ${name} ${type}`,
    `${name}${type === "counter" ? "_total" : ""}{${labels}} ${pyFloat(value)}`,
  ];
  const kv = engine.running / engine.maxConcurrency;
  return [
    ...metric(
      "vllm:num_requests_running",
      "gauge",
      "Number of requests in model execution batches.",
      engine.running,
    ),
    ...metric(
      "vllm:num_requests_waiting",
      "gauge",
      "Number of requests waiting to be processed.",
      engine.waiting,
    ),
    ...metric(
      "vllm:kv_cache_usage_perc",
      "gauge",
      "KV-cache usage. 1 means 100 percent usage.",
      kv,
    ),
    ...metric(
      "vllm:prompt_tokens",
      "counter",
      "Number of prefill tokens processed.",
      engine.promptTokens,
    ),
    ...metric(
      "vllm:generation_tokens",
      "counter",
      "Number of generation tokens processed.",
      engine.generationTokens,
    ),
    "# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.",
    "# TYPE vllm:time_to_first_token_seconds histogram",
    ...ttft.render("vllm:time_to_first_token_seconds", labels),
    "",
  ].join("\n");
}

/** The `/v1/models` body. */
export function modelsBody(model: string, maxModelLen: number): unknown {
  const created = Math.floor(Date.now() / 1000);
  return {
    object: "list",
    data: [{
      id: model,
      object: "model",
      created,
      owned_by: "vllm",
      root: model,
      parent: null,
      max_model_len: maxModelLen,
      permission: [{
        id: `modelperm-${randomHex(16)}`,
        object: "model_permission",
        created,
        allow_create_engine: false,
        allow_sampling: true,
        allow_logprobs: true,
        allow_search_indices: false,
        allow_view: true,
        allow_fine_tuning: false,
        organization: "*",
        group: null,
        is_blocking: false,
      }],
    }],
  };
}

/** Embedding width of the stand-in. */
export const EMBEDDING_DIM = 32;

/**
 * A deterministic unit vector for `text` (same text, same vector), as a
 * float list or, for `encoding_format: "base64"`, base64 of little-endian
 * float32s like vLLM sends.
 */
export function embed(text: string, base64: boolean): number[] | string {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  }
  const out = new Float32Array(EMBEDDING_DIM);
  for (let i = 0; i < EMBEDDING_DIM; i++) {
    h = Math.imul(h ^ (h >>> 15), 2246822519) ^ i;
    out[i] = ((h >>> 0) / 0xffffffff) * 2 - 1;
  }
  const norm = Math.hypot(...out) || 1;
  for (let i = 0; i < EMBEDDING_DIM; i++) out[i] /= norm;
  if (!base64) return Array.from(out);
  return btoa(String.fromCharCode(...new Uint8Array(out.buffer)));
}
