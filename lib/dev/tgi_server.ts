/**
 * A stand-in for Hugging Face text-generation-inference (TGI): `/generate`,
 * `/generate_stream` (SSE), `/health`, `/info` and `/metrics` with TGI's
 * shapes, tokens at a set rate, a batch scheduler, TGI's JSON log lines
 * appended to a file, and failure injection.
 *
 * @example
 * ```ts
 * const tgi = await startTgiServer({ logFile: "/tmp/infer.log" });
 * const r = await fetch(`${tgi.url}/generate`, {
 *   method: "POST",
 *   headers: { "content-type": "application/json" },
 *   body: JSON.stringify({ inputs: "Hi", parameters: { max_new_tokens: 4 } }),
 * });
 * await r.json();
 * await tgi.close();
 * ```
 *
 * @module
 */

import { type Token, TokenEngine } from "./_engine.ts";
import { LogFile } from "./_log.ts";
import * as tgi from "./_tgi_api.ts";
import {
  DevServer,
  eventStream,
  json,
  type RequestScope,
  type RunOutcome as Outcome,
} from "./_serve.ts";
import { tgiInfo, tgiMetrics } from "./_tgi_pages.ts";

export type { TgiFatal } from "./_tgi_api.ts";

/** Options of {@linkcode startTgiServer}. */
export interface TgiServerOptions {
  /** Port to bind on 127.0.0.1; 0 picks a free one. @default 0 */
  port?: number;
  /** File TGI's JSON log lines are appended to. @default none */
  logFile?: string;
  /** `model_id` reported by `/info`. @default "TinyLlama/TinyLlama-1.1B-Chat-v1.0" */
  modelId?: string;
  /** Decoding speed of each request. @default 50 */
  tokensPerSecond?: number;
  /** Requests decoded at once (the batch); the rest queue. @default 32 */
  maxBatchSize?: number;
  /** In-flight requests (queued + running) before TGI answers 429
   * "Model is overloaded". @default 128 */
  maxConcurrentRequests?: number;
  /** Limit of prompt + new tokens. @default 2048 */
  maxTotalTokens?: number;
  /** Time before `/health` turns 200 and `Connected` is logged. @default 0 */
  startupDelayMs?: number;
  /** Failure injection. */
  failures?: {
    /** Share of requests failing with 424 "Request failed during generation". */
    errorRate?: number;
    /** Crash (webserver) once this many requests have finished. */
    crashAfterRequests?: number;
    /** Log `Error: ShardCannotStart` instead of loading, then stop. */
    failStartup?: boolean;
  };
}

/** Handle of a running TGI stand-in. */
export interface TgiServer {
  /** Base URL, `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Bound port. */
  readonly port: number;
  /** Generation requests seen (POST `/generate*`), valid or not. */
  readonly requests: number;
  /** Requests whose client went away while queued or generating. */
  readonly aborted: number;
  /** Last JSON body received on a generation route. */
  readonly lastBody: unknown;
  /** Logs the launcher's fatal lines (`Error: WebserverFailed` unless
   * `"ShardFailed"` is given), fails in-flight requests and stops
   * listening. */
  crash(fatal?: tgi.TgiFatal): Promise<void>;
  /** Changes the decoding speed. */
  setTokensPerSecond(tokensPerSecond: number): void;
  /** Stops the server and flushes the log. Idempotent. */
  close(): Promise<void>;
}

/** Starts the TGI stand-in; resolves once it listens and logged its boot. */
export async function startTgiServer(
  options: TgiServerOptions = {},
): Promise<TgiServer> {
  const server = new TgiStandIn(options);
  await server.flushLog();
  return server;
}

class TgiStandIn implements TgiServer {
  #opts: TgiServerOptions;
  #model: string;
  #maxTotal: number;
  #engine: TokenEngine;
  #log: LogFile;
  #http: DevServer;
  #ready = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #requests = 0;
  #finished = 0;
  #aborted = 0;
  #lastBody: unknown = undefined;

  constructor(opts: TgiServerOptions) {
    this.#opts = opts;
    this.#model = opts.modelId ?? "TinyLlama/TinyLlama-1.1B-Chat-v1.0";
    this.#maxTotal = opts.maxTotalTokens ?? 2048;
    this.#engine = new TokenEngine({
      ...opts,
      maxConcurrency: opts.maxBatchSize ?? 32,
    });
    this.#log = new LogFile(opts.logFile);
    this.#http = new DevServer(
      opts.port ?? 0,
      (req, scope) => this.#route(req, scope),
    );
    this.#log.write(...tgi.tgiBootLines(this.#model, this.port));
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

  setTokensPerSecond(tokensPerSecond: number): void {
    this.#engine.setTokensPerSecond(tokensPerSecond);
  }

  crash(fatal: tgi.TgiFatal = "WebserverFailed"): Promise<void> {
    if (!this.#http.stopped) this.#log.write(...tgi.tgiCrashLines(fatal));
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
      this.#log.write(...tgi.tgiStartupFailureLines());
      void this.close();
      return;
    }
    this.#ready = true;
    this.#log.write(
      ...tgi.tgiReadyLines(this.#engine.maxConcurrency * this.#maxTotal),
    );
  }

  #route(req: Request, scope: RequestScope): Promise<Response> | Response {
    const path = new URL(req.url).pathname;
    const generate = path === "/generate" || path === "/generate_stream";
    if (!generate && !["/health", "/info", "/metrics"].includes(path)) {
      return new Response(null, { status: 404 });
    }
    if ((req.method === "POST") !== generate) {
      return new Response(null, { status: 405 });
    }
    if (path === "/info") {
      return json(
        tgiInfo(
          this.#model,
          this.#engine,
          this.#maxTotal,
          this.#opts.maxConcurrentRequests ?? 128,
        ),
      );
    }
    if (path === "/metrics") {
      return tgiMetrics(this.#engine, this.#requests, this.#maxTotal);
    }
    if (!this.#ready) {
      return path === "/health"
        ? tgi.tgiError(503, "unhealthy", "healthcheck")
        : new Response(null, { status: 503 });
    }
    if (path === "/health") return new Response(null, { status: 200 });
    return this.#generate(path, req, scope);
  }

  async #generate(
    path: string,
    req: Request,
    scope: RequestScope,
  ): Promise<Response> {
    this.#requests++;
    const text = await req.text();
    try {
      this.#lastBody = JSON.parse(text);
    } catch {
      this.#lastBody = undefined;
    }
    const ct = req.headers.get("content-type") ?? "";
    const parsed = tgi.parseTgiRequest(ct, text, this.#maxTotal);
    const route = path.slice(1);
    if (parsed instanceof Response) return this.#refuse(parsed);
    if (
      this.#engine.running + this.#engine.waiting >=
        (this.#opts.maxConcurrentRequests ?? 128)
    ) {
      return this.#refuse(
        tgi.tgiError(429, "Model is overloaded", "overloaded"),
      );
    }
    const rate = this.#opts.failures?.errorRate ?? 0;
    if (rate > 0 && Math.random() < rate) {
      const error =
        "Request failed during generation: Server error: CUDA error (injected failure)";
      this.#log.write(tgi.tgiRequestLine(route, error));
      return this.#refuse(tgi.tgiError(424, error, "generation"));
    }
    this.#engine.promptTokens += parsed.inputLength;
    const started = performance.now();
    if (route === "generate_stream") return this.#stream(parsed, scope);
    const tokens: Token[] = [];
    const outcome = await this.#run(parsed, scope, (t) => tokens.push(t));
    if (outcome === "client") return new Response(null, { status: 499 });
    if (outcome === "killed") {
      return tgi.tgiError(
        424,
        "Request failed during generation: Server error: transport error",
        "generation",
      );
    }
    this.#log.write(tgi.tgiRequestLine(route));
    const ms = Math.round(performance.now() - started);
    return tgi.generateResponse(parsed, tokens, ms);
  }

  #stream(req: tgi.TgiRequest, scope: RequestScope): Response {
    let text = "";
    const body = eventStream(scope, async (send) => {
      const outcome = await this.#run(req, scope, (t) => {
        text += t.text;
        const last = t.index === req.maxNewTokens - 1;
        send(tgi.streamEvent(req, t, last ? text : null));
      });
      if (outcome === "ok") {
        this.#log.write(tgi.tgiRequestLine("generate_stream"));
      }
      return outcome;
    });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream",
        "x-compute-type": "gpu+optimized",
      },
    });
  }

  async #run(
    req: tgi.TgiRequest,
    scope: RequestScope,
    onToken: (t: Token) => void,
  ): Promise<Outcome> {
    if (await this.#engine.admit(scope.signal)) {
      try {
        for await (
          const t of this.#engine.decode(req.maxNewTokens, scope.signal)
        ) onToken(t);
      } finally {
        this.#engine.release();
      }
    }
    const outcome: Outcome = !scope.signal.aborted
      ? "ok"
      : scope.clientGone()
      ? "client"
      : "killed";
    if (outcome === "client") this.#aborted++;
    if (outcome === "ok") this.#engine.finished++;
    this.#done();
    return outcome;
  }

  #refuse(res: Response): Response {
    this.#done();
    return res;
  }

  #done(): void {
    this.#finished++;
    const limit = this.#opts.failures?.crashAfterRequests;
    if (limit !== undefined && this.#finished === limit) void this.crash();
  }
}
