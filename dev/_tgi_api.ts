/**
 * Request validation, answer shapes and JSON log lines of Hugging Face
 * text-generation-inference (TGI), for the stand-in in `tgi_server.ts`.
 *
 * @module
 */

import { countTokens, type Token } from "./_engine.ts";
import { tracingTime } from "./_log.ts";
import { isObject, json } from "./_serve.ts";

/** `max_new_tokens` when the request gives none. */
export const DEFAULT_MAX_NEW_TOKENS = 100;

/** A validated `/generate` or `/generate_stream` request. */
export interface TgiRequest {
  /** The prompt. */
  inputs: string;
  /** Prompt length in tokens. */
  inputLength: number;
  /** Tokens to generate. */
  maxNewTokens: number;
  /** `parameters.details`. */
  details: boolean;
  /** `parameters.return_full_text`. */
  returnFullText: boolean;
}

/** A TGI error body `{"error", "error_type"}` with its status. */
export function tgiError(
  status: number,
  error: string,
  errorType: string,
): Response {
  return json({ error, error_type: errorType }, status);
}

/** axum's plain-text rejection of a body it cannot deserialize. */
function rejection(status: number, text: string): Response {
  return new Response(text, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

/**
 * Validates a request the way TGI's router does (axum extractor first, then
 * its validation workers); returns the request or the error to send.
 */
export function parseTgiRequest(
  contentType: string,
  text: string,
  maxTotalTokens: number,
): TgiRequest | Response {
  if (!contentType.startsWith("application/json")) {
    return rejection(
      415,
      "Expected request with `Content-Type: application/json`",
    );
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    return rejection(
      400,
      `Failed to parse the request body as JSON: ${(e as Error).message}`,
    );
  }
  const bad = (what: string): Response =>
    rejection(
      422,
      `Failed to deserialize the JSON body into the target type: ${what} at line 1 column 1`,
    );
  if (!isObject(body)) {
    return bad("invalid type: expected struct GenerateRequest");
  }
  if (body.inputs === undefined) return bad("missing field `inputs`");
  if (typeof body.inputs !== "string") {
    return bad("inputs: invalid type: expected a string");
  }
  const p = body.parameters ?? {};
  if (!isObject(p)) {
    return bad("parameters: invalid type: expected struct GenerateParameters");
  }
  const mnt = p.max_new_tokens;
  if (
    mnt !== undefined && mnt !== null &&
    (typeof mnt !== "number" || !Number.isInteger(mnt) || mnt < 0)
  ) {
    return bad(
      `parameters.max_new_tokens: invalid value: \`${
        JSON.stringify(mnt)
      }\`, expected u32`,
    );
  }
  const invalid = (msg: string): Response =>
    tgiError(422, `Input validation error: ${msg}`, "validation");
  if (body.inputs.length === 0) return invalid("`inputs` cannot be empty");
  if (typeof p.temperature === "number" && p.temperature <= 0) {
    return invalid("`temperature` must be strictly positive");
  }
  const maxNewTokens = typeof mnt === "number" ? mnt : DEFAULT_MAX_NEW_TOKENS;
  if (maxNewTokens === 0) {
    return invalid("`max_new_tokens` must be strictly positive");
  }
  const inputLength = countTokens(body.inputs);
  if (inputLength + maxNewTokens > maxTotalTokens) {
    return invalid(
      `\`inputs\` tokens + \`max_new_tokens\` must be <= ${maxTotalTokens}. ` +
        `Given: ${inputLength} \`inputs\` tokens and ${maxNewTokens} \`max_new_tokens\``,
    );
  }
  return {
    inputs: body.inputs,
    inputLength,
    maxNewTokens,
    details: p.details === true,
    returnFullText: p.return_full_text === true,
  };
}

/** The `token` object of TGI answers. */
export function tokenBody(t: Token): Record<string, unknown> {
  return { id: t.id, text: t.text, logprob: t.logprob, special: false };
}

/**
 * One `/generate_stream` event; `final` adds `generated_text` and `details`.
 * No `top_tokens`: TGI's `StreamResponse` skips it when empty
 * (`#[serde(skip_serializing_if = "Vec::is_empty")]`, router/src/lib.rs),
 * as it is unless `parameters.top_n_tokens` is set.
 */
export function streamEvent(
  req: TgiRequest,
  t: Token,
  text: string | null,
): Uint8Array {
  const last = text !== null;
  const event = {
    index: t.index + 1,
    token: tokenBody(t),
    generated_text: last
      ? (req.returnFullText ? req.inputs + text : text)
      : null,
    details: last
      ? {
        finish_reason: "length",
        generated_tokens: req.maxNewTokens,
        input_length: req.inputLength,
        seed: null,
      }
      : null,
  };
  return new TextEncoder().encode(`data:${JSON.stringify(event)}\n\n`);
}

/** The `/generate` answer body. */
export function generateBody(req: TgiRequest, tokens: Token[]): unknown {
  const text = tokens.map((t) => t.text).join("");
  const body: Record<string, unknown> = {
    generated_text: req.returnFullText ? req.inputs + text : text,
  };
  if (req.details) {
    body.details = {
      finish_reason: "length",
      generated_tokens: tokens.length,
      seed: null,
      prefill: [],
      tokens: tokens.map(tokenBody),
    };
  }
  return body;
}

/** The `/generate` answer with TGI's timing and token headers. */
export function generateResponse(
  req: TgiRequest,
  tokens: Token[],
  elapsedMs: number,
): Response {
  return new Response(JSON.stringify(generateBody(req, tokens)), {
    headers: {
      "content-type": "application/json",
      "x-compute-type": "gpu+optimized",
      "x-prompt-tokens": String(req.inputLength),
      "x-generated-tokens": String(tokens.length),
      "x-total-time": String(elapsedMs),
      "x-inference-time": String(elapsedMs),
    },
  });
}

/** One JSON log line as TGI's `tracing` JSON formatter prints it. */
export function tgiLine(
  level: string,
  message: string,
  target: string,
  extra: Record<string, unknown> = {},
): string {
  return JSON.stringify({
    timestamp: tracingTime(),
    level,
    message,
    target,
    ...extra,
  });
}

/**
 * A JSON line in TGI's text form (no `--json-output`, as at db931fc): the
 * router's `fmt::layer().with_file(true).with_line_number(true)` gives
 * `<time>  INFO text_generation_router::server: router/src/server.rs:2302:
 * Connected`; the launcher's `.compact()` gives `<time>  INFO <span>:
 * text_generation_launcher: <message>`. Other lines are kept.
 */
export function tgiTextLine(line: string): string {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(line);
  } catch {
    return line;
  }
  if (typeof j !== "object" || j === null || !("level" in j)) return line;
  const head = `${j.timestamp} ${String(j.level).padStart(5)}`;
  const span = (j.span as { name?: string } | undefined)?.name;
  const where = j.filename ? ` ${j.filename}:${j.line_number}:` : "";
  return `${head} ${span ? `${span}: ` : ""}${j.target}:${where} ${j.message}`;
}

const LAUNCHER = "text_generation_launcher";
const shard = {
  span: { rank: 0, name: "shard-manager" },
  spans: [{ rank: 0, name: "shard-manager" }],
};

/** Launcher lines printed while the weights download and the shard starts. */
export function tgiBootLines(model: string, port: number): string[] {
  const download = {
    span: { name: "download" },
    spans: [{ name: "download" }],
  };
  return [
    tgiLine(
      "INFO",
      `Args { model_id: "${model}", port: ${port}, json_output: true }`,
      LAUNCHER,
    ),
    tgiLine("INFO", "Starting download process.", LAUNCHER, download),
    tgiLine("INFO", "Download file: model.safetensors\n", LAUNCHER),
    tgiLine(
      "INFO",
      `Successfully downloaded weights for ${model}`,
      LAUNCHER,
      download,
    ),
    tgiLine("INFO", "Starting shard", LAUNCHER, shard),
  ];
}

/** Lines up to the router's `Connected` (what workers wait for). */
export function tgiReadyLines(maxBatchTotalTokens: number): string[] {
  const router = "text_generation_router";
  const at = (line: number): Record<string, unknown> => ({
    filename: "router/src/main.rs",
    line_number: line,
  });
  return [
    tgiLine("INFO", "Shard ready in 1.214094513s", LAUNCHER, shard),
    tgiLine("INFO", "Starting Webserver", LAUNCHER),
    tgiLine("INFO", "Warming up model", router, at(291)),
    tgiLine(
      "INFO",
      `Setting max batch total tokens to ${maxBatchTotalTokens}`,
      router,
      at(328),
    ),
    tgiLine("INFO", "Connected", `${router}::server`, {
      filename: "router/src/server.rs",
      line_number: 2302,
    }),
    tgiLine("WARN", "Invalid hostname, defaulting to 0.0.0.0", router, at(343)),
  ];
}

/** Lines of a shard that cannot load the model (the launcher exits). */
export function tgiStartupFailureLines(): string[] {
  return [
    tgiLine(
      "ERROR",
      "Shard complete standard error output:\n\ntorch.cuda.OutOfMemoryError: CUDA out of memory.",
      LAUNCHER,
      shard,
    ),
    tgiLine("ERROR", "Shard 0 failed to start", LAUNCHER),
    tgiLine("INFO", "Shutting down shards", LAUNCHER),
    "Error: ShardCannotStart",
  ];
}

/** How a running TGI dies: its router (webserver) or a model shard. */
export type TgiFatal = "WebserverFailed" | "ShardFailed";

/** Launcher lines when a running server dies. */
export function tgiCrashLines(fatal: TgiFatal): string[] {
  return [
    tgiLine(
      "ERROR",
      fatal === "ShardFailed" ? "Shard 0 crashed" : "Webserver Crashed",
      LAUNCHER,
    ),
    tgiLine("INFO", "Shutting down shards", LAUNCHER),
    `Error: ${fatal}`,
  ];
}

/** The router's per-request line (`Success` or the error). */
export function tgiRequestLine(route: string, error?: string): string {
  const span = { span: { name: route }, spans: [{ name: route }] };
  return error === undefined
    ? tgiLine("INFO", "Success", "text_generation_router::server", span)
    : tgiLine("ERROR", error, "text_generation_router::infer", span);
}
