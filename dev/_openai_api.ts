/**
 * Request validation and response shapes of vLLM's OpenAI-compatible API
 * (and the error bodies of SGLang and llama.cpp), for the dev stand-in in
 * `openai_server.ts`.
 *
 * @module
 */

import { countTokens } from "./_engine.ts";
import { isObject, json } from "./_serve.ts";

/**
 * `max_tokens` of a completion that gives none (vLLM's and SGLang's
 * `CompletionRequest.max_tokens = 16`). A chat request without one
 * generates up to the remaining context (vLLM `get_max_tokens`:
 * `max_model_len - input_length`).
 */
export const DEFAULT_MAX_TOKENS = 16;

/**
 * Whose error body to answer with, named after what it imitates:
 * `vllm-0.10.1` `{"error": {message, type, param, code}}` (vLLM PR #22099,
 * since v0.10.1); `vllm-0.10.0` the flat `{"object": "error", message,
 * type, param, code}` of vLLM before it, which SGLang still answers
 * (`sglang`); `llama.cpp` `{"error": {code, message, type}}` with its own
 * type names (`server.cpp` `format_error_response`).
 */
export type ErrorStyle = "vllm-0.10.1" | "vllm-0.10.0" | "sglang" | "llama.cpp";

/** llama.cpp's `type` for vLLM's error class names. */
const LLAMA_TYPES: Record<string, string> = {
  BadRequestError: "invalid_request_error",
  NotFoundError: "not_found_error",
  ServiceUnavailableError: "unavailable_error",
  InternalServerError: "server_error",
  NotImplementedError: "not_supported_error",
};

/** An error answer in `style`'s shape; `type` is vLLM's class name. */
export function apiError(
  style: ErrorStyle,
  message: string,
  type: string,
  code: number,
): Response {
  switch (style) {
    case "vllm-0.10.1":
      return json({ error: { message, type, param: null, code } }, code);
    case "llama.cpp":
      return json({
        error: { code, message, type: LLAMA_TYPES[type] ?? "server_error" },
      }, code);
    default:
      return json({ object: "error", message, type, param: null, code }, code);
  }
}

/** A validated completion or chat request. */
export interface GenRequest {
  /** Which route it came from. */
  kind: "completions" | "chat";
  /** Model name echoed in answers. */
  model: string;
  /** One choice per entry (a completions prompt list gives several). */
  choices: number;
  /** Prompt tokens over all choices. */
  promptTokens: number;
  /** Tokens to generate per choice. */
  maxTokens: number;
  /** `"stream": true`. */
  stream: boolean;
  /** `stream_options.include_usage`. */
  includeUsage: boolean;
}

/** What the server serves, for validation. */
export interface ServedModel {
  /** Served model name. */
  model: string;
  /** Context length. */
  maxModelLen: number;
  /** Shape of error answers. */
  errors: ErrorStyle;
}

/** A 400 phrased like vLLM's handler for pydantic validation errors. */
function validationError(
  style: ErrorStyle,
  type: string,
  field: string,
  msg: string,
): Response {
  return apiError(
    style,
    `[{'type': '${type}', 'loc': ('body', '${field}'), 'msg': '${msg}'}]`,
    "BadRequestError",
    400,
  );
}

function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.map((p) =>
    isObject(p) && typeof p.text === "string" ? p.text : ""
  )
    .join(" ");
}

/**
 * Validates a `/v1/completions` or `/v1/chat/completions` body the way vLLM
 * does; returns the parsed request or the error response to send.
 */
export function parseGenRequest(
  kind: GenRequest["kind"],
  body: unknown,
  served: ServedModel,
): GenRequest | Response {
  const style = served.errors;
  if (!isObject(body)) {
    return apiError(
      style,
      "[{'type': 'json_invalid', 'loc': ('body', 0), 'msg': 'JSON decode error'}]",
      "BadRequestError",
      400,
    );
  }
  if (
    body.model !== undefined && body.model !== null &&
    body.model !== served.model
  ) {
    return apiError(
      style,
      `The model \`${String(body.model)}\` does not exist.`,
      "NotFoundError",
      404,
    );
  }
  let choices = 1;
  let promptTokens: number;
  if (kind === "completions") {
    const p = body.prompt;
    if (p === undefined || p === null) {
      return validationError(style, "missing", "prompt", "Field required");
    }
    if (typeof p === "string") promptTokens = countTokens(p);
    else if (
      Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === "string")
    ) {
      choices = p.length;
      promptTokens = p.reduce((n: number, x: string) => n + countTokens(x), 0);
    } else if (
      Array.isArray(p) && p.length > 0 && p.every((x) => Number.isInteger(x))
    ) {
      promptTokens = p.length;
    } else {
      return validationError(
        style,
        "string_type",
        "prompt",
        "Input should be a valid string",
      );
    }
  } else {
    const m = body.messages;
    if (m === undefined || m === null) {
      return validationError(style, "missing", "messages", "Field required");
    }
    if (
      !Array.isArray(m) ||
      !m.every((x) => isObject(x) && typeof x.role === "string")
    ) {
      return validationError(
        style,
        "list_type",
        "messages",
        "Input should be a valid list",
      );
    }
    promptTokens = m.reduce(
      (n: number, x) => n + 2 + countTokens(contentText(x.content)),
      0,
    );
  }
  const field = body.max_completion_tokens != null
    ? "max_completion_tokens"
    : "max_tokens";
  const raw = body[field];
  const perChoicePrompt = Math.ceil(promptTokens / choices);
  // Chat without a limit: up to the remaining context, as vLLM does.
  let maxTokens = kind === "chat"
    ? Math.max(0, served.maxModelLen - perChoicePrompt)
    : DEFAULT_MAX_TOKENS;
  if (raw !== undefined && raw !== null) {
    if (typeof raw !== "number" || !Number.isInteger(raw)) {
      return validationError(
        style,
        "int_parsing",
        field,
        "Input should be a valid integer, unable to parse string as an integer",
      );
    }
    if (raw < 1) {
      return apiError(
        style,
        `max_tokens must be at least 1, got ${raw}.`,
        "BadRequestError",
        400,
      );
    }
    maxTokens = raw;
  }
  if (perChoicePrompt + maxTokens > served.maxModelLen || maxTokens < 1) {
    const where = kind === "chat" ? "messages" : "prompt";
    return apiError(
      style,
      `This model's maximum context length is ${served.maxModelLen} tokens. However, you ` +
        `requested ${
          perChoicePrompt + maxTokens
        } tokens (${perChoicePrompt} in the ${where}, ` +
        `${maxTokens} in the completion). Please reduce the length of the ${where} or completion.`,
      "BadRequestError",
      400,
    );
  }
  const opts = isObject(body.stream_options) ? body.stream_options : {};
  return {
    kind,
    model: served.model,
    choices,
    promptTokens,
    maxTokens,
    stream: body.stream === true,
    includeUsage: body.stream === true && opts.include_usage === true,
  };
}

/** `usage` object for `promptTokens` + `completionTokens`. */
export function usage(
  promptTokens: number,
  completionTokens: number,
): Record<string, unknown> {
  return {
    prompt_tokens: promptTokens,
    total_tokens: promptTokens + completionTokens,
    completion_tokens: completionTokens,
    prompt_tokens_details: null,
  };
}

/** The common head of every answer and chunk. */
export interface Head {
  /** `cmpl-…` or `chatcmpl-…`. */
  id: string;
  /** Unix seconds. */
  created: number;
}

/** Non-streaming answer body, with `texts[i]` the text of choice `i`. */
export function completionBody(
  req: GenRequest,
  head: Head,
  texts: string[],
): unknown {
  const chat = req.kind === "chat";
  return {
    id: head.id,
    object: chat ? "chat.completion" : "text_completion",
    created: head.created,
    model: req.model,
    choices: texts.map((text, index) =>
      chat
        ? {
          index,
          message: {
            role: "assistant",
            content: text,
            reasoning_content: null,
            tool_calls: [],
          },
          logprobs: null,
          finish_reason: "length",
          stop_reason: null,
        }
        : {
          index,
          text,
          logprobs: null,
          finish_reason: "length",
          stop_reason: null,
        }
    ),
    usage: usage(req.promptTokens, req.maxTokens * req.choices),
  };
}

/** One streamed chunk; `delta` is a token's text, or `null` for chat's role chunk. */
export function chunkBody(
  req: GenRequest,
  head: Head,
  index: number,
  delta: string | null,
  finishReason: string | null,
): unknown {
  const chat = req.kind === "chat";
  const choice = chat
    ? {
      index,
      delta: delta === null
        ? { role: "assistant", content: "" }
        : { content: delta },
      logprobs: null,
      finish_reason: finishReason,
    }
    : {
      index,
      text: delta ?? "",
      logprobs: null,
      finish_reason: finishReason,
      stop_reason: null,
    };
  return {
    id: head.id,
    object: chat ? "chat.completion.chunk" : "text_completion",
    created: head.created,
    model: req.model,
    choices: [choice],
  };
}

/** The final usage-only chunk sent when `stream_options.include_usage`. */
export function usageChunk(req: GenRequest, head: Head): unknown {
  return {
    id: head.id,
    object: req.kind === "chat" ? "chat.completion.chunk" : "text_completion",
    created: head.created,
    model: req.model,
    choices: [],
    usage: usage(req.promptTokens, req.maxTokens * req.choices),
  };
}

/** Encodes one server-sent event as `data: <json>\n\n`. */
export function sse(data: unknown): Uint8Array {
  return new TextEncoder().encode(`data: ${JSON.stringify(data)}\n\n`);
}

/** The terminating event of OpenAI-style streams. */
export const SSE_DONE: Uint8Array = new TextEncoder().encode(
  "data: [DONE]\n\n",
);
