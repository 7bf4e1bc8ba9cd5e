/**
 * A stand-in for the ComfyUI API wrapper (ai-dock/comfyui-api-wrapper, port
 * 18288 in Vast's images) with ComfyUI behind it: `POST /generate/sync` runs
 * one job at a time (FIFO), taking `secondsPerImage` per image, and answers
 * with the wrapper's Result envelope; `/health`; the wrapper's log lines
 * (`BACKENDS_READY`, `BACKEND_UNRECOVERABLE`) appended to a file.
 *
 * @example
 * ```ts
 * const comfy = await startComfyUiServer({ secondsPerImage: 0.1 });
 * const r = await fetch(`${comfy.url}/generate/sync`, {
 *   method: "POST",
 *   headers: { "content-type": "application/json" },
 *   body: JSON.stringify({ input: { modifier: "Text2Image", modifications: { prompt: "a cat" } } }),
 * });
 * (await r.json()).output; // [{ filename: "ComfyUI_00001_.png", ... }]
 * await comfy.close();
 * ```
 *
 * @module
 */

import { delay } from "../lib/std/async.ts";
import { Slots } from "./_async.ts";
import {
  type ComfyJob,
  parseComfyPayload,
  prepareWorkflow,
} from "./_comfy_api.ts";
import * as comfyLog from "./_comfy_logs.ts";
import {
  closeTimings,
  type ComfyResult,
  completeJob,
  newResult,
} from "./_comfy_result.ts";
import { json, parseJson, reasonPhrase, type RequestScope } from "./_serve.ts";
import {
  launch,
  StandIn,
  type StandInOptions,
  type StandInServer,
} from "./_standin.ts";

/**
 * Options of {@linkcode startComfyUiServer}. Under `failures`, `errorRate`
 * ends jobs `"status": "failed"` (execution error), and with `failStartup`
 * ComfyUI never comes up: the wrapper logs `BACKENDS_READY_TIMEOUT` and
 * `/health` stays 503.
 */
export interface ComfyUiServerOptions extends StandInOptions {
  /** Generation time per image, in seconds. @default 1 */
  secondsPerImage?: number;
  /** Print `BACKENDS_READY` once up; older wrappers never do. @default true */
  readySignal?: boolean;
  /** ComfyUI's output folder, for `local_path`. @default "/opt/ComfyUI/output" */
  outputDir?: string;
}

/**
 * Handle of a running ComfyUI wrapper stand-in. Its inference requests are
 * the jobs POSTed to `/generate/sync`; `crash()` logs
 * `BACKEND_UNRECOVERABLE`.
 */
export interface ComfyUiServer extends StandInServer {
  /** Changes the generation time per image (for jobs that start later). */
  setSecondsPerImage(seconds: number): void;
}

/** Starts the stand-in; resolves once it listens and logged its boot. */
export function startComfyUiServer(
  options: ComfyUiServerOptions = {},
): Promise<ComfyUiServer> {
  return launch(() => new ComfyStandIn(options));
}

class ComfyStandIn extends StandIn<ComfyUiServerOptions>
  implements ComfyUiServer {
  #secondsPerImage: number;
  #slots = new Slots(1);
  #files = 0;

  constructor(opts: ComfyUiServerOptions) {
    super(opts);
    this.#secondsPerImage = opts.secondsPerImage ?? 1;
    this.start(comfyLog.boot);
  }

  setSecondsPerImage(seconds: number): void {
    this.#secondsPerImage = seconds;
  }

  override crash(): Promise<void> {
    return this.crashWith([comfyLog.unrecoverable()]);
  }

  protected override failStartup(): void {
    this.log.write(comfyLog.readyTimeout());
  }

  protected override logReady(): void {
    if (this.opts.readySignal ?? true) this.log.write(comfyLog.ready());
  }

  protected override async route(
    req: Request,
    scope: RequestScope,
  ): Promise<Response> {
    const path = new URL(req.url).pathname;
    let res: Response;
    if (path === "/health" || path === "/queue-info") {
      res = req.method === "GET"
        ? this.#health(path)
        : json({ detail: "Method Not Allowed" }, 405);
    } else if (path === "/generate/sync") {
      res = req.method === "POST"
        ? await this.#sync(req, scope)
        : json({ detail: "Method Not Allowed" }, 405);
    } else res = json({ detail: "Not Found" }, 404);
    const line =
      `INFO:     ${scope.remote} - "${req.method} ${path} HTTP/1.1" ${res.status} ${
        reasonPhrase(res.status)
      }`;
    if (res.status !== 499) this.log.write(line);
    return res;
  }

  #health(path: string): Response {
    const generation = this.#slots.running + this.#slots.waiting;
    if (path === "/queue-info") {
      return json({
        preprocess_queue_size: 0,
        generation_queue_size: generation,
        postprocess_queue_size: 0,
      });
    }
    const body = {
      status: this.ready ? "healthy" : "unhealthy",
      cache_type: "memory",
      queues: { preprocess: 0, generation, postprocess: 0 },
    };
    return json(body, this.ready ? 200 : 503);
  }

  async #sync(req: Request, scope: RequestScope): Promise<Response> {
    const text = await req.text();
    this.countRequest();
    this.noteBody(parseJson(text));
    const job = parseComfyPayload(text);
    if (job instanceof Response) return this.#done(job);
    const result = newResult(job.requestId);
    this.log.write(comfyLog.queued(job.requestId));
    if (!await this.#slots.acquire(scope.signal)) {
      return this.#interrupted(result, scope);
    }
    try {
      return await this.#execute(job, result, scope);
    } finally {
      this.#slots.release();
    }
  }

  async #execute(
    job: ComfyJob,
    result: ComfyResult,
    scope: RequestScope,
  ): Promise<Response> {
    const id = job.requestId;
    this.log.write(comfyLog.processing(id));
    let t = Date.now();
    const prepared = prepareWorkflow(job, comfyLog.COMFY);
    if (typeof prepared === "string") return this.#failed(result, prepared);
    const { workflow, outputs } = prepared;
    result.timings.preprocess_ms = Date.now() - t;
    if (this.injectFailure()) {
      return this.#failed(
        result,
        "Generation failed: Execution error: CUDA out of memory (injected failure)",
      );
    }
    t = Date.now();
    const images = outputs.reduce((n, o) => n + o.count, 0);
    const ms = this.#secondsPerImage * 1000 * images;
    await delay(ms, { signal: scope.signal }).catch(() => {});
    if (scope.signal.aborted) return this.#interrupted(result, scope);
    result.timings.generation_ms = Date.now() - t;
    this.#files = completeJob(result, workflow, outputs, {
      outputDir: this.opts.outputDir ?? "/opt/ComfyUI/output",
      fileCounter: this.#files,
    });
    result.status = "completed";
    result.message = "Processing complete.";
    this.log.write(comfyLog.completed(id));
    return this.#done(json(closeTimings(result)));
  }

  #failed(result: ComfyResult, message: string): Response {
    this.log.write(comfyLog.failed(result.id, message));
    result.status = "failed";
    result.message = message;
    return this.#done(json(closeTimings(result)));
  }

  #interrupted(result: ComfyResult, scope: RequestScope): Response {
    if (!scope.clientGone()) {
      return this.#failed(
        result,
        `Generation failed: ComfyUI backend ${comfyLog.COMFY} is unrecoverable`,
      );
    }
    this.countAborted();
    this.log.write(comfyLog.disconnected(scope.remote, result.id));
    result.status = "cancelled";
    result.message = "Client closed connection";
    return this.#done(json(result, 499));
  }

  #done(res: Response): Response {
    this.countFinished();
    return res;
  }
}
