/**
 * The generating routes of the OpenAI-compatible stand-in: completions and
 * chat (JSON or SSE) and embeddings, scheduled on a {@linkcode TokenEngine}.
 *
 * @module
 */

import { randomHex } from "./_async.ts";
import { countTokens, type TokenEngine } from "./_engine.ts";
import {
  apiError,
  chunkBody,
  completionBody,
  type ErrorStyle,
  type GenRequest,
  type Head,
  parseGenRequest,
  sse,
  SSE_DONE,
  usageChunk,
} from "./_openai_api.ts";
import type { HistogramChild } from "../lib/metrics/prometheus_text.ts";
import { embed } from "./_openai_extra.ts";
import {
  eventStream,
  isObject,
  json,
  type RequestScope,
  type RunOutcome,
} from "./_serve.ts";

/** How a request ended: done, client gone, server killed, or refused. */
export type Outcome = RunOutcome | "rejected";

/** What the generator needs from its server. */
export interface GenContext {
  /** Scheduler and decoder. */
  engine: TokenEngine;
  /** Time-to-first-token histogram to feed. */
  ttft: HistogramChild;
  /** Served model name. */
  model: string;
  /** Context length. */
  maxModelLen: number;
  /** Shape of error answers. */
  errors: ErrorStyle;
  /**
   * `/v1/embeddings` is served; else 501 as llama.cpp answers without
   * `--embeddings`.
   */
  embeddings: boolean;
  /** Called exactly once per request, when it ends. */
  onFinish(outcome: Outcome): void;
}

const JSON_INVALID =
  "[{'type': 'json_invalid', 'loc': ('body', 0), 'msg': 'JSON decode error'}]";
const INPUT_MISSING =
  "[{'type': 'missing', 'loc': ('body', 'input'), 'msg': 'Field required'}]";
/** llama.cpp `server.cpp` `handle_embeddings_impl` without `--embeddings`. */
const NO_EMBEDDINGS =
  "This server does not support embeddings. Start it with `--embeddings`";

/** Answers `/v1/completions`, `/v1/chat/completions` and `/v1/embeddings`. */
export class OpenAiGenerator {
  #ctx: GenContext;

  /**
   * Creates the generator.
   *
   * @param ctx engine, metrics and the finish callback.
   */
  constructor(ctx: GenContext) {
    this.#ctx = ctx;
  }

  /** A completion or chat request with its parsed JSON `body`. */
  async completion(
    kind: GenRequest["kind"],
    body: unknown,
    scope: RequestScope,
  ): Promise<Response> {
    const parsed = parseGenRequest(kind, body, this.#ctx);
    if (parsed instanceof Response) {
      this.#ctx.onFinish("rejected");
      return parsed;
    }
    this.#ctx.engine.promptTokens += parsed.promptTokens;
    const head: Head = {
      id: `${kind === "chat" ? "chatcmpl" : "cmpl"}-${randomHex(16)}`,
      created: Math.floor(Date.now() / 1000),
    };
    if (parsed.stream) return this.#stream(parsed, head, scope);
    const texts = new Array<string>(parsed.choices).fill("");
    const outcome = await this.#run(
      parsed,
      scope,
      (choice, text) => texts[choice] += text,
    );
    if (outcome === "ok") return json(completionBody(parsed, head, texts));
    if (outcome === "client") return new Response(null, { status: 499 });
    return apiError(
      this.#ctx.errors,
      "EngineCore encountered an issue. See stack trace (above) for the root cause.",
      "InternalServerError",
      500,
    );
  }

  #stream(req: GenRequest, head: Head, scope: RequestScope): Response {
    const body = eventStream(scope, async (send) => {
      const outcome = await this.#run(req, scope, (choice, text, index) => {
        if (req.kind === "chat" && index === 0) {
          send(sse(chunkBody(req, head, choice, null, null)));
        }
        const finish = index === req.maxTokens - 1 ? "length" : null;
        send(sse(chunkBody(req, head, choice, text, finish)));
      });
      if (outcome === "ok") {
        if (req.includeUsage) send(sse(usageChunk(req, head)));
        send(SSE_DONE);
      }
      return outcome;
    });
    return new Response(body, {
      headers: { "content-type": "text/event-stream; charset=utf-8" },
    });
  }

  /** Schedules and decodes one request; `onToken` gets each choice's token. */
  async #run(
    req: GenRequest,
    scope: RequestScope,
    onToken: (choice: number, text: string, index: number) => void,
  ): Promise<RunOutcome> {
    const t0 = performance.now();
    let outcome: RunOutcome = "ok";
    const release = await this.#ctx.engine.admit(scope.signal);
    if (release) {
      try {
        for await (
          const tok of this.#ctx.engine.decode(req.maxTokens, scope.signal)
        ) {
          if (tok.index === 0) {
            this.#ctx.ttft.observe((performance.now() - t0) / 1000);
          }
          for (let c = 0; c < req.choices; c++) onToken(c, tok.text, tok.index);
        }
      } finally {
        release();
      }
    }
    if (scope.signal.aborted) {
      outcome = scope.clientGone() ? "client" : "killed";
    }
    if (outcome === "ok") this.#ctx.engine.finished++;
    this.#ctx.onFinish(outcome);
    return outcome;
  }

  /** An embeddings request with its parsed JSON `body`. */
  async embeddings(body: unknown, scope: RequestScope): Promise<Response> {
    const input = isObject(body) ? body.input : undefined;
    const texts = typeof input === "string"
      ? [input]
      : Array.isArray(input) && input.length > 0
      ? input.map(String)
      : undefined;
    const style = this.#ctx.errors;
    let error: Response | undefined;
    if (!this.#ctx.embeddings) {
      error = apiError(style, NO_EMBEDDINGS, "NotImplementedError", 501);
    } else if (!isObject(body)) {
      error = apiError(style, JSON_INVALID, "BadRequestError", 400);
    } else if (body.model != null && body.model !== this.#ctx.model) {
      error = apiError(
        style,
        `The model \`${String(body.model)}\` does not exist.`,
        "NotFoundError",
        404,
      );
    } else if (texts === undefined) {
      error = apiError(style, INPUT_MISSING, "BadRequestError", 400);
    }
    if (error || texts === undefined) {
      this.#ctx.onFinish("rejected");
      return error!;
    }
    const promptTokens = texts.reduce((n, t) => n + countTokens(t), 0);
    const run: GenRequest = {
      kind: "completions",
      model: this.#ctx.model,
      choices: 1,
      promptTokens,
      maxTokens: 1,
      stream: false,
      includeUsage: false,
    };
    this.#ctx.engine.promptTokens += promptTokens;
    const outcome = await this.#run(run, scope, () => {});
    if (outcome !== "ok") {
      return new Response(null, { status: outcome === "client" ? 499 : 500 });
    }
    const base64 = isObject(body) && body.encoding_format === "base64";
    return json({
      id: `embd-${randomHex(16)}`,
      object: "list",
      created: Math.floor(Date.now() / 1000),
      model: this.#ctx.model,
      data: texts.map((t, index) => ({
        index,
        object: "embedding",
        embedding: embed(t, base64),
      })),
      usage: {
        prompt_tokens: promptTokens,
        total_tokens: promptTokens,
        completion_tokens: 0,
        prompt_tokens_details: null,
      },
    });
  }
}
