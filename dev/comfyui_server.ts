/**
 * A stand-in for the ComfyUI API wrapper (ai-dock/comfyui-api-wrapper, port
 * 18288 in Vast's images) with ComfyUI behind it: `POST /generate/sync` runs
 * one job at a time (FIFO), taking `secondsPerImage` per image, and answers
 * with the wrapper's Result envelope; `/health`; the wrapper's log lines
 * (`BACKENDS_READY`, `BACKEND_UNRECOVERABLE`) appended to a file.
 *
 * The wrapper listens at once; ComfyUI itself (`comfyUrl`, a second port,
 * 18188 in Vast's images) listens only once loaded (after
 * `startupDelayMs`), answering `/system_stats`, and writes its own log
 * (`comfyLogFile`) ending in `To see the GUI go to: `. `wrapper` picks the
 * wrapper version imitated (see `_comfy_versions.ts`): `/health`, the
 * status of failed jobs, `comfyui_response`, backpressure and the ready
 * line all follow it.
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

import { SlotQueue } from "../lib/traffic/admission.ts";
import { deadline, delay } from "../lib/std/async.ts";
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
import {
  cannotConnect,
  healthAnswer,
  statusOfResult,
  systemStats,
  traitsOf,
  type WrapperTraits,
  type WrapperVersion,
} from "./_comfy_versions.ts";
import { LogFile } from "./_log.ts";
import {
  DevServer,
  json,
  parseJson,
  reasonPhrase,
  type RequestScope,
} from "./_serve.ts";
import {
  launch,
  StandIn,
  type StandInOptions,
  type StandInServer,
} from "./_standin.ts";

export type { WrapperVersion } from "./_comfy_versions.ts";
export { WRAPPER_VERSIONS } from "./_comfy_versions.ts";

/**
 * Options of {@linkcode startComfyUiServer}. `startupDelayMs` is the time
 * ComfyUI takes to load. Under `failures`, `errorRate` ends jobs
 * `"status": "failed"` (execution error), and with `failStartup` ComfyUI
 * never comes up: `/health` stays unhealthy (except the oldest wrapper's)
 * and the current wrapper logs `BACKENDS_READY_TIMEOUT`.
 */
export interface ComfyUiServerOptions extends StandInOptions {
  /** Generation time per image, in seconds. @default 1 */
  secondsPerImage?: number;
  /** The wrapper version imitated. @default "2026-05-08" (e1d04af) */
  wrapper?: WrapperVersion;
  /** File ComfyUI's own log lines are appended to. @default none */
  comfyLogFile?: string;
  /** ComfyUI's output folder, for `local_path`. @default "/opt/ComfyUI/output" */
  outputDir?: string;
  /** `INCLUDE_COMFYUI_RESPONSE`: keep `comfyui_response` in answers (the
   * header `X-Include-ComfyUI-Response` decides per request). Wrappers
   * before 2026-05-06 always keep it. @default false */
  includeComfyuiResponse?: boolean;
  /** `MAX_QUEUE_SIZE`: jobs in flight above which wrappers since
   * 2026-05-06 answer 503 + `Retry-After: 5`. @default 100 */
  maxQueueSize?: number;
}

/**
 * Handle of a running ComfyUI wrapper stand-in. Its inference requests are
 * the jobs POSTed to `/generate/sync`; `crash()` logs
 * `BACKEND_UNRECOVERABLE` (and stops ComfyUI too).
 */
export interface ComfyUiServer extends StandInServer {
  /** ComfyUI's own base URL (listening once loaded). */
  readonly comfyUrl: string;
  /** Changes the generation time per image (for jobs that start later). */
  setSecondsPerImage(seconds: number): void;
  /** ComfyUI finishes loading now, before `startupDelayMs` is over. */
  load(): void;
}

/** How long a current wrapper's first job waits for ComfyUI. */
const COMFY_WAIT_MS = 120_000;

/** Starts the stand-in; resolves once it listens and logged its boot. */
export function startComfyUiServer(
  options: ComfyUiServerOptions = {},
): Promise<ComfyUiServer> {
  return launch(() => new ComfyStandIn(options));
}

class ComfyStandIn extends StandIn<ComfyUiServerOptions>
  implements ComfyUiServer {
  #secondsPerImage: number;
  #slots = new SlotQueue(1);
  #files = 0;
  #traits: WrapperTraits;
  #comfyPort: number;
  #comfy: DevServer | undefined;
  #comfyLog: LogFile;
  #comfyUp = Promise.withResolvers<void>();

  constructor(opts: ComfyUiServerOptions) {
    super(opts);
    this.#secondsPerImage = opts.secondsPerImage ?? 1;
    this.#traits = traitsOf(opts.wrapper ?? "2026-05-08");
    this.#comfyPort = reservePort();
    this.#comfyLog = new LogFile(opts.comfyLogFile);
    this.#comfyLog.write(...comfyLog.comfyBoot());
    this.start(comfyLog.boot);
  }

  get comfyUrl(): string {
    return `http://127.0.0.1:${this.#comfyPort}`;
  }

  setSecondsPerImage(seconds: number): void {
    this.#secondsPerImage = seconds;
  }

  load(): void {
    this.endStartupNow();
  }

  override crash(): Promise<void> {
    return this.crashWith([comfyLog.unrecoverable()]);
  }

  override async close(): Promise<void> {
    await this.#comfy?.stop();
    await super.close();
    await this.#comfyLog.flush();
  }

  override async flushLog(): Promise<void> {
    await Promise.all([super.flushLog(), this.#comfyLog.flush()]);
  }

  protected override failStartup(): void {
    if (this.#traits.readySignal) this.log.write(comfyLog.readyTimeout());
  }

  /** ComfyUI has loaded: it listens, logs so, and the wrapper notices. */
  protected override logReady(): void {
    this.#comfy = new DevServer(this.#comfyPort, (req) => {
      const path = new URL(req.url).pathname;
      return path === "/system_stats" && req.method === "GET"
        ? json(systemStats())
        : new Response("404: Not Found", { status: 404 });
    });
    this.#comfyLog.write(...comfyLog.comfyListening(this.#comfyPort));
    this.#comfyUp.resolve();
    if (this.#traits.readySignal) this.log.write(comfyLog.ready());
  }

  get #comfyHost(): string {
    return `127.0.0.1:${this.#comfyPort}`;
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
    const generation = this.#slots.active + this.#slots.waiting;
    if (path === "/queue-info") {
      return json({
        preprocess_queue_size: 0,
        generation_queue_size: generation,
        postprocess_queue_size: 0,
      });
    }
    const { status, body } = healthAnswer(this.#traits, {
      comfyUp: this.ready,
      comfy: this.#comfyHost,
      queues: { preprocess: 0, generation, postprocess: 0 },
    });
    return json(body, status);
  }

  async #sync(req: Request, scope: RequestScope): Promise<Response> {
    const text = await req.text();
    this.countRequest();
    this.noteBody(parseJson(text));
    const job = parseComfyPayload(text);
    if (job instanceof Response) return this.#done(job);
    const result = newResult(job.requestId);
    const inFlight = this.#slots.active + this.#slots.waiting;
    const max = this.opts.maxQueueSize ?? 100;
    if (this.#traits.backpressure && inFlight >= max) {
      this.log.write(comfyLog.rejected(job.requestId, inFlight, max));
      result.status = "failed";
      result.message = `Worker at capacity (${max} in flight); retry shortly`;
      result.comfyui_response = {};
      result.timings = {};
      const res = json(result, 503);
      res.headers.set("retry-after", "5");
      return this.#done(res);
    }
    this.log.write(comfyLog.queued(job.requestId));
    const release = await this.#slots.acquire(scope.signal).catch(() => {});
    if (!release) return this.#interrupted(result, scope, req);
    try {
      return await this.#execute(job, result, scope, req);
    } finally {
      release();
    }
  }

  /**
   * Whether ComfyUI can take the job: at once for the old wrappers (which
   * then fail it, "Cannot connect"), after waiting up to 120 s for newer
   * ones.
   */
  async #comfyReachable(scope: RequestScope): Promise<boolean> {
    if (this.ready) return true;
    if (!this.#traits.waitsForComfy) return false;
    try {
      await deadline(this.#comfyUp.promise, COMFY_WAIT_MS, {
        signal: scope.signal,
      });
      return true;
    } catch {
      return false;
    }
  }

  async #execute(
    job: ComfyJob,
    result: ComfyResult,
    scope: RequestScope,
    req: Request,
  ): Promise<Response> {
    const id = job.requestId;
    this.log.write(comfyLog.processing(id));
    let t = Date.now();
    if (!(await this.#comfyReachable(scope))) {
      if (scope.signal.aborted) return this.#interrupted(result, scope, req);
      return this.#failed(
        result,
        req,
        this.#traits.waitsForComfy
          ? "Generation failed: ComfyUI not ready after 120s"
          : `Generation failed: Network error posting to ComfyUI: ${
            cannotConnect(this.#comfyHost)
          }`,
      );
    }
    const prepared = prepareWorkflow(
      job,
      this.comfyUrl,
      this.#traits.waitsForComfy,
    );
    if (typeof prepared === "string") {
      return this.#failed(result, req, prepared);
    }
    const { workflow, outputs } = prepared;
    result.timings.preprocess_ms = Date.now() - t;
    if (this.injectFailure()) {
      return this.#failed(
        result,
        req,
        "Generation failed: Execution error: CUDA out of memory (injected failure)",
      );
    }
    t = Date.now();
    const images = outputs.reduce((n, o) => n + o.count, 0);
    const ms = this.#secondsPerImage * 1000 * images;
    await delay(ms, { signal: scope.signal }).catch(() => {});
    if (scope.signal.aborted) return this.#interrupted(result, scope, req);
    result.timings.generation_ms = Date.now() - t;
    this.#files = completeJob(result, workflow, outputs, {
      outputDir: this.opts.outputDir ?? "/opt/ComfyUI/output",
      fileCounter: this.#files,
    });
    result.status = "completed";
    result.message = "Processing complete.";
    this.log.write(comfyLog.completed(id));
    return this.#done(this.#answer(result, req));
  }

  #failed(result: ComfyResult, req: Request, message: string): Response {
    this.log.write(comfyLog.failed(result.id, message));
    result.status = "failed";
    result.message = message;
    return this.#done(this.#answer(result, req));
  }

  /** A finished job's Result, shaped and with its status as the version's. */
  #answer(result: ComfyResult, req: Request): Response {
    const t = this.#traits;
    closeTimings(result);
    if (!t.timings) result.timings = {};
    const header = req.headers.get("x-include-comfyui-response");
    const include = header !== null
      ? ["1", "true", "yes", "on"].includes(header.trim().toLowerCase())
      : this.opts.includeComfyuiResponse ?? false;
    if (t.slimResult && !include) result.comfyui_response = {};
    return json(result, statusOfResult(t, result.status, result.message));
  }

  #interrupted(
    result: ComfyResult,
    scope: RequestScope,
    req: Request,
  ): Response {
    if (!scope.clientGone()) {
      return this.#failed(
        result,
        req,
        `Generation failed: ComfyUI backend ${this.comfyUrl} is unrecoverable`,
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

/** A free port on 127.0.0.1 for ComfyUI, which listens only once loaded. */
function reservePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
