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

import { sleep, Slots } from "./_async.ts";
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
import { LogFile } from "./_log.ts";
import { DevServer, json, reasonPhrase, type RequestScope } from "./_serve.ts";

/** Options of {@linkcode startComfyUiServer}. */
export interface ComfyUiServerOptions {
  /** Port to bind on 127.0.0.1; 0 picks a free one. @default 0 */
  port?: number;
  /** File the wrapper's log lines are appended to. @default none */
  logFile?: string;
  /** Generation time per image, in seconds. @default 1 */
  secondsPerImage?: number;
  /** Time until ComfyUI is up (`/health` 200, `BACKENDS_READY`). @default 0 */
  startupDelayMs?: number;
  /** Print `BACKENDS_READY` once up; older wrappers never do. @default true */
  readySignal?: boolean;
  /** ComfyUI's output folder, for `local_path`. @default "/opt/ComfyUI/output" */
  outputDir?: string;
  /** Failure injection. */
  failures?: {
    /** Share of jobs ending `"status": "failed"` (execution error). */
    errorRate?: number;
    /** Crash (as {@linkcode ComfyUiServer.crash}) after this many jobs. */
    crashAfterRequests?: number;
    /** ComfyUI never comes up: log `BACKENDS_READY_TIMEOUT`, `/health` stays
     * 503. */
    failStartup?: boolean;
  };
}

/** Handle of a running ComfyUI wrapper stand-in. */
export interface ComfyUiServer {
  /** Base URL, `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Bound port. */
  readonly port: number;
  /** `POST /generate/sync` requests seen, valid or not. */
  readonly requests: number;
  /** Jobs whose client went away while queued or generating. */
  readonly aborted: number;
  /** Last JSON body received on `/generate/sync`. */
  readonly lastBody: unknown;
  /** Logs `BACKEND_UNRECOVERABLE`, fails in-flight jobs and stops
   * listening (connection refused). */
  crash(): Promise<void>;
  /** Changes the generation time per image (for jobs that start later). */
  setSecondsPerImage(seconds: number): void;
  /** Stops the server and flushes the log. Idempotent. */
  close(): Promise<void>;
}

/** Starts the stand-in; resolves once it listens and logged its boot. */
export async function startComfyUiServer(
  options: ComfyUiServerOptions = {},
): Promise<ComfyUiServer> {
  const server = new ComfyStandIn(options);
  await server.flushLog();
  return server;
}

class ComfyStandIn implements ComfyUiServer {
  #opts: ComfyUiServerOptions;
  #secondsPerImage: number;
  #slots = new Slots(1);
  #log: LogFile;
  #http: DevServer;
  #ready = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #files = 0;
  #requests = 0;
  #finished = 0;
  #aborted = 0;
  #lastBody: unknown = undefined;

  constructor(opts: ComfyUiServerOptions) {
    this.#opts = opts;
    this.#secondsPerImage = opts.secondsPerImage ?? 1;
    this.#log = new LogFile(opts.logFile);
    this.#http = new DevServer(
      opts.port ?? 0,
      (req, scope) => this.#route(req, scope),
    );
    this.#log.write(...comfyLog.boot(this.port));
    const delay = opts.startupDelayMs ?? 0;
    if (delay > 0) this.#timer = setTimeout(() => this.#finishStartup(), delay);
    else this.#finishStartup();
  }

  get url(): string {
    return this.#http.url;
  }
  get port(): number {
    return this.#http.port;
  }
  get requests(): number {
    return this.#requests;
  }
  get aborted(): number {
    return this.#aborted;
  }
  get lastBody(): unknown {
    return this.#lastBody;
  }

  flushLog(): Promise<void> {
    return this.#log.flush();
  }

  setSecondsPerImage(seconds: number): void {
    this.#secondsPerImage = seconds;
  }

  crash(): Promise<void> {
    if (!this.#http.stopped) {
      this.#log.write(comfyLog.unrecoverable());
    }
    return this.close();
  }

  async close(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#http.stop();
    await this.#log.flush();
  }

  #finishStartup(): void {
    this.#timer = undefined;
    if (this.#opts.failures?.failStartup) {
      this.#log.write(comfyLog.readyTimeout());
      return;
    }
    this.#ready = true;
    if (this.#opts.readySignal ?? true) {
      this.#log.write(comfyLog.ready());
    }
  }

  async #route(req: Request, scope: RequestScope): Promise<Response> {
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
    if (res.status !== 499) this.#log.write(line);
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
      status: this.#ready ? "healthy" : "unhealthy",
      cache_type: "memory",
      queues: { preprocess: 0, generation, postprocess: 0 },
    };
    return json(body, this.#ready ? 200 : 503);
  }

  async #sync(req: Request, scope: RequestScope): Promise<Response> {
    const text = await req.text();
    this.#requests++;
    try {
      this.#lastBody = JSON.parse(text);
    } catch {
      this.#lastBody = undefined;
    }
    const job = parseComfyPayload(text);
    if (job instanceof Response) return this.#done(job);
    const result = newResult(job.requestId);
    this.#log.write(comfyLog.queued(job.requestId));
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
    this.#log.write(comfyLog.processing(id));
    let t = Date.now();
    const prepared = prepareWorkflow(job, comfyLog.COMFY);
    if (typeof prepared === "string") return this.#failed(result, prepared);
    const { workflow, outputs } = prepared;
    result.timings.preprocess_ms = Date.now() - t;
    const rate = this.#opts.failures?.errorRate ?? 0;
    if (rate > 0 && Math.random() < rate) {
      return this.#failed(
        result,
        "Generation failed: Execution error: CUDA out of memory (injected failure)",
      );
    }
    t = Date.now();
    const images = outputs.reduce((n, o) => n + o.count, 0);
    if (!await sleep(this.#secondsPerImage * 1000 * images, scope.signal)) {
      return this.#interrupted(result, scope);
    }
    result.timings.generation_ms = Date.now() - t;
    this.#files = completeJob(result, workflow, outputs, {
      outputDir: this.#opts.outputDir ?? "/opt/ComfyUI/output",
      fileCounter: this.#files,
    });
    result.status = "completed";
    result.message = "Processing complete.";
    this.#log.write(comfyLog.completed(id));
    return this.#done(json(closeTimings(result)));
  }

  #failed(result: ComfyResult, message: string): Response {
    this.#log.write(comfyLog.failed(result.id, message));
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
    this.#aborted++;
    this.#log.write(comfyLog.disconnected(scope.remote, result.id));
    result.status = "cancelled";
    result.message = "Client closed connection";
    return this.#done(json(result, 499));
  }

  #done(res: Response): Response {
    this.#finished++;
    const limit = this.#opts.failures?.crashAfterRequests;
    if (limit !== undefined && this.#finished === limit) void this.crash();
    return res;
  }
}
