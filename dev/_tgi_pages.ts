/**
 * TGI's `/info` and `/metrics` pages for the stand-in in `tgi_server.ts`.
 *
 * @module
 */

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
  const metric = (type: string, name: string, v: number): string =>
    `# TYPE ${name} ${type}\n${name} ${v}\n`;
  const text = [
    metric("gauge", "tgi_queue_size", engine.waiting),
    metric("gauge", "tgi_batch_current_size", engine.running),
    metric(
      "gauge",
      "tgi_batch_current_max_tokens",
      engine.running * maxTotalTokens,
    ),
    metric("counter", "tgi_request_count", requests),
    metric("counter", "tgi_request_success", engine.finished),
    metric(
      "counter",
      "tgi_request_generated_tokens_total",
      engine.generationTokens,
    ),
  ].join("\n");
  return new Response(text, {
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}
