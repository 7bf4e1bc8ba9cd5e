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

import { TokenEngine } from "./_engine.ts";
import { LogFile } from "./_log.ts";
import { type GenRequest, vllmError } from "./_openai_api.ts";
import { Histogram, modelsBody, vllmMetrics } from "./_openai_extra.ts";
import { OpenAiGenerator, type Outcome } from "./_openai_gen.ts";
import * as logs from "./_openai_logs.ts";
import {
  DevServer,
  json,
  readJson,
  reasonPhrase,
  type RequestScope,
} from "./_serve.ts";

export type { Flavor } from "./_openai_logs.ts";

/** Options of {@linkcode startOpenAiServer}. */
export interface OpenAiServerOptions {
  /** Port to bind on 127.0.0.1; 0 picks a free one. @default 0 */
  port?: number;
  /** File the engine's log lines are appended to. @default none */
  logFile?: string;
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
  /** Time before `/health` turns 200 and the "loaded" lines are written.
   * @default 0 */
  startupDelayMs?: number;
  /** Failure injection. */
  failures?: {
    /** Share of inference requests answered 500 at once (0..1). */
    errorRate?: number;
    /** Crash (as {@linkcode OpenAiServer.crash}) once this many inference
     * requests have finished. */
    crashAfterRequests?: number;
    /** Fail to load: write the load-failure lines instead of the "loaded"
     * ones after `startupDelayMs`, then stop listening. */
    failStartup?: boolean;
  };
}

/** Handle of a running stand-in. */
export interface OpenAiServer {
  /** Base URL, `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Bound port. */
  readonly port: number;
  /** Inference requests seen (POST `/v1/*`), valid or not. */
  readonly requests: number;
  /** Requests whose client went away while queued or generating. */
  readonly aborted: number;
  /** Last JSON body received on an inference route. */
  readonly lastBody: unknown;
  /** Writes the engine's fatal lines, fails in-flight requests and stops
   * listening (connection refused). Resolves once the port is closed. */
  crash(): Promise<void>;
  /** Changes the decoding speed (running requests follow at once). */
  setTokensPerSecond(tokensPerSecond: number): void;
  /** Stops the server and flushes the log. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts the stand-in; resolves once it listens and its first log lines are
 * written.
 */
export async function startOpenAiServer(
  options: OpenAiServerOptions = {},
): Promise<OpenAiServer> {
  const server = new OpenAiStandIn(options);
  await server.flushLog();
  return server;
}

class OpenAiStandIn implements OpenAiServer {
  #opts: OpenAiServerOptions;
  #flavor: logs.Flavor;
  #model: string;
  #maxModelLen: number;
  #engine: TokenEngine;
  #ttft = new Histogram();
  #gen: OpenAiGenerator;
  #log: LogFile;
  #http: DevServer;
  #ready = false;
  #startTimer: ReturnType<typeof setTimeout> | undefined;
  #requests = 0;
  #finished = 0;
  #aborted = 0;
  #lastBody: unknown = undefined;

  constructor(opts: OpenAiServerOptions) {
    this.#opts = opts;
    this.#flavor = opts.flavor ?? "vllm";
    this.#model = opts.model ?? "Qwen/Qwen3-0.6B";
    this.#maxModelLen = opts.maxModelLen ?? 4096;
    this.#engine = new TokenEngine(opts);
    this.#gen = new OpenAiGenerator({
      engine: this.#engine,
      ttft: this.#ttft,
      model: this.#model,
      maxModelLen: this.#maxModelLen,
      onFinish: (outcome) => this.#finish(outcome),
    });
    this.#log = new LogFile(opts.logFile);
    this.#http = new DevServer(
      opts.port ?? 0,
      (req, scope) => this.#route(req, scope),
    );
    this.#log.write(...logs.bootLines(this.#flavor, this.#model, this.port));
    const delay = opts.startupDelayMs ?? 0;
    if (delay > 0) {
      this.#startTimer = setTimeout(() => this.#finishStartup(), delay);
    } else this.#finishStartup();
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

  setTokensPerSecond(tokensPerSecond: number): void {
    this.#engine.setTokensPerSecond(tokensPerSecond);
  }

  crash(): Promise<void> {
    if (!this.#http.stopped) this.#log.write(...logs.crashLines(this.#flavor));
    return this.close();
  }

  async close(): Promise<void> {
    clearTimeout(this.#startTimer);
    await this.#http.stop();
    await this.#log.flush();
  }

  #finishStartup(): void {
    this.#startTimer = undefined;
    if (this.#opts.failures?.failStartup) {
      this.#log.write(...logs.startupFailureLines(this.#flavor, this.#model));
      void this.close();
      return;
    }
    this.#ready = true;
    this.#log.write(...logs.readyLines(this.#flavor, this.port));
  }

  async #route(req: Request, scope: RequestScope): Promise<Response> {
    const path = new URL(req.url).pathname;
    const res = await this.#dispatch(req.method, path, req, scope);
    this.#log.write(
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
    if (!this.#ready) return this.#loading(path);
    switch (path) {
      case "/health":
        return this.#flavor === "llama_cpp"
          ? json({ status: "ok" })
          : new Response(null, { status: 200 });
      case "/metrics":
        return new Response(
          vllmMetrics(this.#model, this.#engine, this.#ttft),
          {
            headers: {
              "content-type": "text/plain; version=0.0.4; charset=utf-8",
            },
          },
        );
      case "/v1/models":
        return json(modelsBody(this.#model, this.#maxModelLen));
      default:
        return this.#infer(path, req, scope);
    }
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
    return vllmError(
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
    this.#requests++;
    this.#lastBody = body;
    const rate = this.#opts.failures?.errorRate ?? 0;
    if (rate > 0 && Math.random() < rate) {
      const message = "Internal server error (injected failure)";
      this.#log.write(logs.requestErrorLine(this.#flavor, message));
      this.#finish("rejected");
      return vllmError(message, "InternalServerError", 500);
    }
    if (path === "/v1/embeddings") return this.#gen.embeddings(body, scope);
    const kind: GenRequest["kind"] = path === "/v1/completions"
      ? "completions"
      : "chat";
    return this.#gen.completion(kind, body, scope);
  }

  #finish(outcome: Outcome): void {
    if (outcome === "client") this.#aborted++;
    this.#finished++;
    const limit = this.#opts.failures?.crashAfterRequests;
    if (limit !== undefined && this.#finished === limit) void this.crash();
  }
}
