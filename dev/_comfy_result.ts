/**
 * The ComfyUI API wrapper's Result envelope, for `comfyui_server.ts`.
 *
 * @module
 */

import type { OutputNode, Workflow } from "./_comfy_api.ts";

/** The wrapper's Result envelope. */
export interface ComfyResult {
  /** Request id. */
  id: string;
  /** Human-readable state. */
  message: string;
  /** `completed`, `failed`, `cancelled`, … */
  status: string;
  /** ComfyUI's history entry (plus `execution_details`), or null. */
  comfyui_response: Record<string, unknown> | null;
  /** Files written, one entry per file. */
  output: Record<string, unknown>[];
  /** Integer milliseconds per stage. */
  timings: Record<string, number>;
}

/**
 * Fills a successful Result: one file per output image (ComfyUI's
 * `<prefix>_<counter>_.<ext>` names), the history entry as
 * `comfyui_response`, and `output` (previews skipped, like the wrapper).
 *
 * @returns the file counter after this job.
 */
export function completeJob(
  result: ComfyResult,
  workflow: Workflow,
  outputs: OutputNode[],
  opts: { outputDir: string; fileCounter: number },
): number {
  let counter = opts.fileCounter;
  const promptId = crypto.randomUUID();
  const history: Record<string, unknown> = {};
  for (const o of outputs) {
    const files = Array.from({ length: o.count }, () => ({
      filename: `${o.prefix}_${String(++counter).padStart(5, "0")}_.${o.ext}`,
      subfolder: "",
      type: o.type,
    }));
    history[o.id] = { [o.kind]: files };
    for (const f of files.filter((f) => f.type === "output")) {
      result.output.push({
        filename: f.filename,
        local_path: `${opts.outputDir}/${result.id}/${f.filename}`,
        type: f.type,
        subfolder: "",
        node_id: o.id,
        output_type: o.kind,
      });
    }
  }
  result.comfyui_response = {
    [promptId]: {
      prompt: [counter, promptId, workflow, {}, outputs.map((o) => o.id)],
      outputs: history,
      status: { status_str: "success", completed: true, messages: [] },
    },
    execution_details: {
      prompt_id: promptId,
      nodes_executed: Object.keys(workflow),
      progress_updates: [],
      completed: true,
      error: null,
    },
  };
  return counter;
}

/** A fresh Result for a queued request. */
export function newResult(id: string): ComfyResult {
  return {
    id,
    message: "Request queued",
    status: "pending",
    comfyui_response: null,
    output: [],
    timings: { queued_at_ms: Date.now() },
  };
}

/** Stamps the closing timings (integer ms), on success and failure alike. */
export function closeTimings(result: ComfyResult): ComfyResult {
  const now = Date.now();
  result.timings.postprocess_ms = 0;
  result.timings.completed_at_ms = now;
  result.timings.total_ms = now - result.timings.queued_at_ms;
  return result;
}
