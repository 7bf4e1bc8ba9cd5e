/**
 * Log lines of the ComfyUI API wrapper (uvicorn + Python `logging` default
 * format `LEVEL:logger:message`), for `comfyui_server.ts`. Workers wait for
 * `BACKENDS_READY` and treat `BACKENDS_READY_TIMEOUT` and
 * `BACKEND_UNRECOVERABLE` as fatal.
 *
 * @module
 */

/** The ComfyUI backend the wrapper talks to. */
export const COMFY = "http://127.0.0.1:18188";

/** Lines printed as uvicorn starts the wrapper. */
export function boot(port: number): string[] {
  return [
    `INFO:     Started server process [${Deno.pid}]`,
    "INFO:     Waiting for application startup.",
    "INFO:main:Workers initialized successfully",
    "INFO:     Application startup complete.",
    `INFO:     Uvicorn running on http://127.0.0.1:${port} (Press CTRL+C to quit)`,
    "INFO:main:Started 1 preprocess workers",
    "INFO:main:Started 1 generation workers",
    "INFO:main:Started 1 postprocess workers",
  ];
}

/** Printed once every ComfyUI backend answers (wrappers since 5bbf3e9). */
export function ready(): string {
  return "INFO:main:BACKENDS_READY: 1 backend(s) reachable, ready to serve";
}

/** ComfyUI's own log (`/var/log/portal/comfyui.log`) as it loads. */
export function comfyBoot(): string[] {
  return [
    "Checkpoint files will always be loaded safely.",
    "Total VRAM 24210 MB, total RAM 64000 MB",
    "pytorch version: 2.8.0+cu128",
    "Set vram state to: NORMAL_VRAM",
    "Device: cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync",
    "Using pytorch attention",
    "ComfyUI version: 0.3.75",
    "[Prompt Server] web root: /workspace/ComfyUI/web",
  ];
}

/** ComfyUI's lines once its HTTP server listens on `port`. */
export function comfyListening(port: number): string[] {
  return [
    "Starting server",
    "",
    `To see the GUI go to: http://127.0.0.1:${port}`,
  ];
}

/** Printed when ComfyUI does not come up in time. */
export function readyTimeout(): string {
  return "ERROR:main:BACKENDS_READY_TIMEOUT: not all of 1 backend(s) reachable after 600s";
}

/** Printed when the GPU behind ComfyUI is lost. */
export function unrecoverable(): string {
  return `ERROR:workers.generation_worker:BACKEND_UNRECOVERABLE: ${COMFY} ` +
    "marked unrecoverable: CUDA error: an illegal memory access was encountered";
}

/** A sync request entered the queue. */
export function queued(id: string): string {
  return `INFO:main:Queued synchronous request ${id}`;
}

/** A job refused because the queue is full (wrappers since 2026-05-06). */
export function rejected(id: string, inFlight: number, max: number): string {
  return `WARNING:main:Rejecting ${id}: preprocess queue full (${inFlight}/${max})`;
}

/** The generation worker took a job. */
export function processing(id: string): string {
  return `INFO:workers.generation_worker:GenerationWorker 1 processing job: ${id}`;
}

/** A job finished. */
export function completed(id: string): string {
  return `INFO:workers.postprocess_worker:PostprocessWorker 1 completed job: ${id}`;
}

/** A job failed with `message`. */
export function failed(id: string, message: string): string {
  return `ERROR:workers.generation_worker:GenerationWorker 1 failed job ${id}: ${message}`;
}

/** The client of a sync request went away. */
export function disconnected(remote: string, id: string): string {
  return `INFO:main:${remote} - "POST /generate/sync" 499 DISCONNECTED for ${id}`;
}
