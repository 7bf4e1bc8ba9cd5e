/**
 * A stand-in for an OpenAI-compatible model server (vLLM by default, or
 * SGLang / llama.cpp log lines), for the demo and the tests: real routes and
 * JSON shapes, tokens streamed at a set rate, an engine-like scheduler,
 * the engine's log lines appended to a file, and failure injection.
 *
 * @example
 * ```ts
 * const llm = await startOpenAiServer({ logFile: "/tmp/vllm.log" });
 * const r = await fetch(`${llm.url}/v1/completions`, {
 *   method: "POST",
 *   body: JSON.stringify({ prompt: "Hi", max_tokens: 4 }),
 * });
 * await r.json();
 * await llm.close();
 * ```
 *
 * @module
 */

import {
  type HistogramVec,
  PROMETHEUS_CONTENT_TYPE,
} from "../lib/metrics/prometheus_text.ts";
import { delay } from "../lib/std/async.ts";
import { TokenEngine } from "./_engine.ts";
import { apiError, type ErrorStyle, type GenRequest } from "./_openai_api.ts";
import {
  modelsBody,
  sglangMetrics,
  ttftHistogram,
  vllmMetrics,
} from "./_openai_extra.ts";
import { OpenAiGenerator, type Outcome } from "./_openai_gen.ts";
import * as logs from "./_openai_logs.ts";
import { json, readJson, reasonPhrase, type RequestScope } from "./_serve.ts";
import {
  launch,
  StandIn,
  type StandInOptions,
  type StandInServer,
} from "./_standin.ts";

export type { Flavor } from "./_openai_logs.ts";

/**
 * Options of {@linkcode startOpenAiServer}. Under `failures`, `errorRate`
 * answers inference requests 500 at once, and `failStartup` writes the
 * load-failure lines instead of the "loaded" ones, then stops listening.
 */
export interface OpenAiServerOptions extends StandInOptions {
  /** Whose log lines to write. @default "vllm" */
  flavor?: logs.Flavor;
  /** Served model name. @default "Qwen/Qwen3-0.6B" */
  model?: string;
  /** Context length used to validate `max_tokens`. @default 4096 */
  maxModelLen?: number;
  /** Decoding speed of each request. @default 50 */
  tokensPerSecond?: number;
  /** Requests decoded at once; the rest wait (FIFO). @default 256 */
  maxConcurrency?: number;
  /**
   * vLLM release whose error body to answer with: `"0.10.1"` nests it,
   * `{"error": {message, type, param, code}}` (PR #22099, what the boot
   * lines' 0.10.1.1 answers); `"0.10.0"` is the flat `{"object": "error",
   * ...}` before it. SGLang always answers flat, llama.cpp its own nested
   * `{"error": {code, message, type}}`. @default "0.10.1"
   */
  vllmVersion?: "0.10.1" | "0.10.0";
  /**
   * SGLang's `--enable-metrics`: without it SGLang serves no `/metrics`
   * (404; Vast's `sglang.sh` does not pass it); with it, SGLang's own
   * names (`sglang:num_running_reqs`, ...). vLLM and llama.cpp flavors
   * always serve vLLM's page. @default false
   */
  enableMetrics?: boolean;
  /**
   * llama.cpp's `--embeddings`: without it `/v1/embeddings` answers 501.
   * Other flavors always serve embeddings. @default false
   */
  embeddings?: boolean;
  /**
   * Seconds SGLang's `/health` takes once it is up: it runs a one-token
   * generation and checks each second (so at least 1 s), up to
   * `SGLANG_HEALTH_CHECK_TIMEOUT` (20 s), then answers 503. Other flavors
   * answer at once. @default 1
   */
  healthSeconds?: number;
}

/** SGLang's `SGLANG_HEALTH_CHECK_TIMEOUT` default, in seconds. */
export const SGLANG_HEALTH_CHECK_TIMEOUT = 20;

/**
 * Handle of a running stand-in. Its inference requests are the POSTs to
 * `/v1/*` (`completions`, `chat/completions`, `embeddings`); `crash()`
 * writes the engine's fatal lines.
 */
export interface OpenAiServer extends StandInServer {
  /** Changes the decoding speed (running requests follow at once). */
  setTokensPerSecond(tokensPerSecond: number): void;
  /** `GET /health` requests answered so far. */
  readonly healthChecks: number;
  /** Generation hangs (`true`: no token comes, `/health` stays 200) or resumes. */
  setGenerationHangs(hangs: boolean): void;
}

/**
 * Starts the stand-in; resolves once it listens and its first log lines are
 * written.
 */
export function startOpenAiServer(
  options: OpenAiServerOptions = {},
): Promise<OpenAiServer> {
  return launch(() => new OpenAiStandIn(options));
}

class OpenAiStandIn extends StandIn<OpenAiServerOptions>
  implements OpenAiServer {
  #flavor: logs.Flavor;
  #model: string;
  #maxModelLen: number;
  #engine: TokenEngine;
  #ttft: HistogramVec;
  #gen: OpenAiGenerator;
  #errors: ErrorStyle;
  #healthChecks = 0;

  constructor(opts: OpenAiServerOptions) {
    super(opts);
    this.#flavor = opts.flavor ?? "vllm";
    this.#model = opts.model ?? "Qwen/Qwen3-0.6B";
    this.#maxModelLen = opts.maxModelLen ?? 4096;
    this.#engine = new TokenEngine(opts);
    this.#errors = errorStyleOf(this.#flavor, opts.vllmVersion ?? "0.10.1");
    const sglang = this.#flavor === "sglang";
    this.#ttft = ttftHistogram(sglang ? "sglang" : "vllm");
    this.#gen = new OpenAiGenerator({
      engine: this.#engine,
      ttft: sglang
        ? this.#ttft.labels(this.#model)
        : this.#ttft.labels("0", this.#model),
      model: this.#model,
      maxModelLen: this.#maxModelLen,
      errors: this.#errors,
      embeddings: this.#flavor !== "llama_cpp" || opts.embeddings === true,
      onFinish: (outcome) => this.#finish(outcome),
    });
    this.start((port) => logs.bootLines(this.#flavor, this.#model, port));
  }

  setTokensPerSecond(tokensPerSecond: number): void {
    this.#engine.setTokensPerSecond(tokensPerSecond);
  }

  get healthChecks(): number {
    return this.#healthChecks;
  }

  setGenerationHangs(hangs: boolean): void {
    this.#engine.setHung(hangs);
  }

  override crash(): Promise<void> {
    return this.crashWith(logs.crashLines(this.#flavor));
  }

  protected override get defaultProgram(): string {
    return logs.PROGRAM[this.#flavor];
  }

  protected override failStartup(): void {
    this.log.write(...logs.startupFailureLines(this.#flavor, this.#model));
    this.noteExit();
    void this.close();
  }

  protected override logReady(): void {
    this.log.write(...logs.readyLines(this.#flavor, this.port));
  }

  protected override async route(
    req: Request,
    scope: RequestScope,
  ): Promise<Response> {
    const path = new URL(req.url).pathname;
    const res = await this.#dispatch(req.method, path, req, scope);
    this.log.write(
      logs.accessLine(
        this.#flavor,
        scope.remote,
        req.method,
        path,
        res.status,
        reasonPhrase(res.status),
      ),
    );
    return res;
  }

  #dispatch(
    method: string,
    path: string,
    req: Request,
    scope: RequestScope,
  ): Promise<Response> | Response {
    const inference = path === "/v1/completions" ||
      path === "/v1/chat/completions" || path === "/v1/embeddings";
    const known = inference ||
      ["/health", "/metrics", "/v1/models"].includes(path);
    if (!known) return json({ detail: "Not Found" }, 404);
    if ((method === "POST") !== inference) {
      return json({ detail: "Method Not Allowed" }, 405);
    }
    if (path === "/health") this.#healthChecks++;
    if (!this.ready) return this.#loading(path);
    switch (path) {
      case "/health":
        return this.#health(scope);
      case "/metrics":
        return this.#metrics();
      case "/v1/models":
        return json(modelsBody(this.#model, this.#maxModelLen));
      default:
        return this.#infer(path, req, scope);
    }
  }

  async #health(scope: RequestScope): Promise<Response> {
    if (this.#flavor === "llama_cpp") return json({ status: "ok" });
    if (this.#flavor === "sglang") {
      // A one-token generation, checked each second (http_server.py).
      const seconds = Math.max(1, this.opts.healthSeconds ?? 1);
      const wait = Math.min(seconds, SGLANG_HEALTH_CHECK_TIMEOUT);
      await delay(wait * 1000, { signal: scope.signal }).catch(() => {});
      const ok = seconds <= SGLANG_HEALTH_CHECK_TIMEOUT;
      return new Response(null, { status: ok ? 200 : 503 });
    }
    return new Response(null, { status: 200 });
  }

  #metrics(): Response {
    const headers = { "content-type": PROMETHEUS_CONTENT_TYPE };
    if (this.#flavor !== "sglang") {
      return new Response(
        vllmMetrics(this.#model, this.#engine, this.#ttft),
        { headers },
      );
    }
    if (!this.opts.enableMetrics) return json({ detail: "Not Found" }, 404);
    return new Response(
      sglangMetrics(this.#model, this.#engine, this.#ttft),
      { headers },
    );
  }

  #loading(path: string): Response {
    if (this.#flavor === "llama_cpp") {
      return json({
        error: {
          code: 503,
          message: "Loading model",
          type: "unavailable_error",
        },
      }, 503);
    }
    if (path === "/health") return new Response(null, { status: 503 });
    return apiError(
      this.#errors,
      "The model is still loading.",
      "ServiceUnavailableError",
      503,
    );
  }

  async #infer(
    path: string,
    req: Request,
    scope: RequestScope,
  ): Promise<Response> {
    const body = await readJson(req);
    this.countRequest();
    this.noteBody(body);
    if (this.injectFailure()) {
      const message = "Internal server error (injected failure)";
      this.log.write(logs.requestErrorLine(this.#flavor, message));
      this.#finish("rejected");
      return apiError(this.#errors, message, "InternalServerError", 500);
    }
    if (path === "/v1/embeddings") return this.#gen.embeddings(body, scope);
    const kind: GenRequest["kind"] = path === "/v1/completions"
      ? "completions"
      : "chat";
    return this.#gen.completion(kind, body, scope);
  }

  #finish(outcome: Outcome): void {
    if (outcome === "client") this.countAborted();
    this.countFinished();
  }
}

/** The error body a flavor answers with. */
function errorStyleOf(
  flavor: logs.Flavor,
  vllmVersion: "0.10.1" | "0.10.0",
): ErrorStyle {
  if (flavor === "sglang") return "sglang";
  if (flavor === "llama_cpp") return "llama.cpp";
  return `vllm-${vllmVersion}`;
}
