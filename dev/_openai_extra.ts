/**
 * The smaller pages for the dev stand-in: `/metrics` text (vLLM's, or
 * SGLang's own names), `/v1/models` and embedding vectors.
 *
 * @module
 */

import { HistogramVec, TextWriter } from "../lib/metrics/prometheus_text.ts";
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

const TTFT = "vllm:time_to_first_token_seconds";

/** SGLang's default time-to-first-token buckets (`metrics/collector.py`). */
const SGLANG_TTFT_BUCKETS = [
  0.1,
  0.2,
  0.4,
  0.6,
  0.8,
  1,
  2,
  4,
  6,
  8,
  10,
  20,
  40,
  60,
  80,
  100,
  200,
  400,
];

/**
 * The time-to-first-token histogram: vLLM's, labelled `engine`,
 * `model_name`; or SGLang's `sglang:time_to_first_token_seconds`, labelled
 * `model_name`.
 */
export function ttftHistogram(names: "vllm" | "sglang" = "vllm"): HistogramVec {
  const help = "Histogram of time to first token in seconds.";
  return names === "sglang"
    ? new HistogramVec(
      "sglang:time_to_first_token_seconds",
      help,
      ["model_name"],
      SGLANG_TTFT_BUCKETS,
    )
    : new HistogramVec(TTFT, help, ["engine", "model_name"], TTFT_BUCKETS);
}

/**
 * The `/metrics` page of vLLM (V1 engine metric names, Python
 * `prometheus_client` number format).
 */
export function vllmMetrics(
  model: string,
  engine: TokenEngine,
  ttft: HistogramVec,
): string {
  const w = new TextWriter({ pythonFloats: true });
  const labels = { engine: "0", model_name: model };
  const metric = (
    name: string,
    type: "gauge" | "counter",
    help: string,
    value: number,
  ): void => {
    w.family(name, type, help);
    w.sample(type === "counter" ? `${name}_total` : name, labels, value);
  };
  metric(
    "vllm:num_requests_running",
    "gauge",
    "Number of requests in model execution batches.",
    engine.running,
  );
  metric(
    "vllm:num_requests_waiting",
    "gauge",
    "Number of requests waiting to be processed.",
    engine.waiting,
  );
  metric(
    "vllm:kv_cache_usage_perc",
    "gauge",
    "KV-cache usage. 1 means 100 percent usage.",
    engine.running / engine.maxConcurrency,
  );
  metric(
    "vllm:prompt_tokens",
    "counter",
    "Number of prefill tokens processed.",
    engine.promptTokens,
  );
  metric(
    "vllm:generation_tokens",
    "counter",
    "Number of generation tokens processed.",
    engine.generationTokens,
  );
  ttft.render(w);
  return w.text();
}

/**
 * The `/metrics` page of SGLang started with `--enable-metrics` (without it
 * there is none): its scheduler gauges, labelled as its collector labels
 * them (`model_name`, `engine_type`, `tp_rank`, `pp_rank`), and its
 * tokenizer's TTFT histogram.
 */
export function sglangMetrics(
  model: string,
  engine: TokenEngine,
  ttft: HistogramVec,
): string {
  const w = new TextWriter({ pythonFloats: true });
  const labels = {
    model_name: model,
    engine_type: "unified",
    tp_rank: "0",
    pp_rank: "0",
  };
  const gauge = (name: string, help: string, value: number): void => {
    w.family(name, "gauge", help);
    w.sample(name, labels, value);
  };
  gauge(
    "sglang:num_running_reqs",
    "The number of running requests.",
    engine.running,
  );
  gauge(
    "sglang:num_queue_reqs",
    "The number of requests in the waiting queue.",
    engine.waiting,
  );
  gauge(
    "sglang:token_usage",
    "The token usage.",
    engine.running / engine.maxConcurrency,
  );
  ttft.render(w);
  return w.text();
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
