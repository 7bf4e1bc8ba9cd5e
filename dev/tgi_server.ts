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
import * as tgi from "./_tgi_api.ts";
import {
  eventStream,
  json,
  parseJson,
  type RequestScope,
  type RunOutcome as Outcome,
} from "./_serve.ts";
import {
  launch,
  StandIn,
  type StandInOptions,
  type StandInServer,
} from "./_standin.ts";
import { tgiInfo, tgiMetrics } from "./_tgi_pages.ts";

export type { TgiFatal } from "./_tgi_api.ts";

/**
 * Options of {@linkcode startTgiServer}. Under `failures`, `errorRate` fails
 * requests with 424 "Request failed during generation", `crashAfterRequests`
 * crashes the webserver, and `failStartup` logs `Error: ShardCannotStart`
 * instead of loading, then stops.
 */
export interface TgiServerOptions extends StandInOptions {
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
  /** `json`: the launcher run with `--json-output` (Vast's template);
   * `text`: without it, TGI's default text lines as at db931fc (see
   * `tgiTextLine`). @default "json" */
  logFormat?: "json" | "text";
}

/**
 * Handle of a running TGI stand-in. Its inference requests are the POSTs
 * to `/generate` and `/generate_stream`.
 */
export interface TgiServer extends StandInServer {
  /** Logs the launcher's fatal lines (`Error: WebserverFailed` unless
   * `"ShardFailed"` is given), fails in-flight requests and stops
   * listening. */
  crash(fatal?: tgi.TgiFatal): Promise<void>;
  /** Changes the decoding speed. */
  setTokensPerSecond(tokensPerSecond: number): void;
}

/** Starts the TGI stand-in; resolves once it listens and logged its boot. */
export function startTgiServer(
  options: TgiServerOptions = {},
): Promise<TgiServer> {
  return launch(() => new TgiStandIn(options));
}

class TgiStandIn extends StandIn<TgiServerOptions> implements TgiServer {
  #model: string;
  #maxTotal: number;
  #engine: TokenEngine;

  constructor(opts: TgiServerOptions) {
    super(opts);
    this.#model = opts.modelId ?? "TinyLlama/TinyLlama-1.1B-Chat-v1.0";
    this.#maxTotal = opts.maxTotalTokens ?? 2048;
    this.#engine = new TokenEngine({
      ...opts,
      maxConcurrency: opts.maxBatchSize ?? 32,
    });
    this.start((port) => tgi.tgiBootLines(this.#model, port));
  }

  setTokensPerSecond(tokensPerSecond: number): void {
    this.#engine.setTokensPerSecond(tokensPerSecond);
  }

  override crash(fatal: tgi.TgiFatal = "WebserverFailed"): Promise<void> {
    return this.crashWith(tgi.tgiCrashLines(fatal));
  }

  protected override failStartup(): void {
    this.log.write(...tgi.tgiStartupFailureLines());
    this.noteExit();
    void this.close();
  }

  protected override formatLine(line: string): string {
    return this.opts.logFormat === "text" ? tgi.tgiTextLine(line) : line;
  }

  protected override get defaultProgram(): string {
    return "text-generation-inference";
  }

  protected override logReady(): void {
    this.log.write(
      ...tgi.tgiReadyLines(this.#engine.maxConcurrency * this.#maxTotal),
    );
  }

  protected override route(
    req: Request,
    scope: RequestScope,
  ): Promise<Response> | Response {
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
          this.opts.maxConcurrentRequests ?? 128,
        ),
      );
    }
    if (path === "/metrics") {
      return tgiMetrics(this.#engine, this.requests, this.#maxTotal);
    }
    if (!this.ready) {
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
    this.countRequest();
    const text = await req.text();
    this.noteBody(parseJson(text));
    const ct = req.headers.get("content-type") ?? "";
    const parsed = tgi.parseTgiRequest(ct, text, this.#maxTotal);
    const route = path.slice(1);
    if (parsed instanceof Response) return this.#refuse(parsed);
    if (
      this.#engine.running + this.#engine.waiting >=
        (this.opts.maxConcurrentRequests ?? 128)
    ) {
      return this.#refuse(
        tgi.tgiError(429, "Model is overloaded", "overloaded"),
      );
    }
    if (this.injectFailure()) {
      const error =
        "Request failed during generation: Server error: CUDA error (injected failure)";
      this.log.write(tgi.tgiRequestLine(route, error));
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
    this.log.write(tgi.tgiRequestLine(route));
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
        this.log.write(tgi.tgiRequestLine("generate_stream"));
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
    const release = await this.#engine.admit(scope.signal);
    if (release) {
      try {
        for await (
          const t of this.#engine.decode(req.maxNewTokens, scope.signal)
        ) onToken(t);
      } finally {
        release();
      }
    }
    const outcome: Outcome = !scope.signal.aborted
      ? "ok"
      : scope.clientGone()
      ? "client"
      : "killed";
    if (outcome === "client") this.countAborted();
    if (outcome === "ok") this.#engine.finished++;
    this.countFinished();
    return outcome;
  }

  #refuse(res: Response): Response {
    this.countFinished();
    return res;
  }
}
