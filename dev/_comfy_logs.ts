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

/** Printed once every ComfyUI backend answers. */
export function ready(): string {
  return "INFO:main:BACKENDS_READY: 1/1 ComfyUI backend(s) ready";
}

/** Printed when ComfyUI does not come up in time. */
export function readyTimeout(): string {
  return `ERROR:main:BACKENDS_READY_TIMEOUT: backends not ready after 600s: ${COMFY}`;
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
