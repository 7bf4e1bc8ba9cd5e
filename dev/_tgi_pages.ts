/**
 * TGI's `/info` and `/metrics` pages for the stand-in in `tgi_server.ts`.
 *
 * @module
 */

import { TextWriter } from "../lib/metrics/prometheus_text.ts";
import type { TokenEngine } from "./_engine.ts";

/** The `/info` body of TGI 2.0. */
export function tgiInfo(
  model: string,
  engine: TokenEngine,
  maxTotalTokens: number,
  maxConcurrentRequests: number,
): unknown {
  return {
    model_id: model,
    model_sha: null,
    model_dtype: "torch.float16",
    model_device_type: "cuda",
    model_pipeline_tag: "text-generation",
    max_concurrent_requests: maxConcurrentRequests,
    max_best_of: 2,
    max_stop_sequences: 4,
    max_input_length: maxTotalTokens - 1,
    max_total_tokens: maxTotalTokens,
    waiting_served_ratio: 1.2,
    max_batch_total_tokens: engine.maxConcurrency * maxTotalTokens,
    max_waiting_tokens: 20,
    validation_workers: 2,
    max_client_batch_size: 4,
    router: "text-generation-router",
    version: "2.0.4",
    sha: null,
    docker_label: null,
  };
}

/** The `/metrics` page (metrics-exporter-prometheus text). */
export function tgiMetrics(
  engine: TokenEngine,
  requests: number,
  maxTotalTokens: number,
): Response {
  const w = new TextWriter()
    .single("tgi_queue_size", "gauge", "Current queue size", engine.waiting)
    .single(
      "tgi_batch_current_size",
      "gauge",
      "Current batch size",
      engine.running,
    )
    .single(
      "tgi_batch_current_max_tokens",
      "gauge",
      "Maximum tokens for the current batch",
      engine.running * maxTotalTokens,
    )
    .single(
      "tgi_request_count",
      "counter",
      "Total number of requests",
      requests,
    )
    .single(
      "tgi_request_success",
      "counter",
      "Number of successful requests",
      engine.finished,
    )
    .single(
      "tgi_request_generated_tokens_total",
      "counter",
      "Total number of generated tokens",
      engine.generationTokens,
    );
  return new Response(w.text(), {
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}
