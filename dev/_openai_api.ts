/**
 * Request validation and response shapes of vLLM's OpenAI-compatible API,
 * for the dev stand-in in `openai_server.ts`.
 *
 * @module
 */

import { countTokens } from "./_engine.ts";
import { isObject, json } from "./_serve.ts";

/** Default `max_tokens` when the request gives none. */
export const DEFAULT_MAX_TOKENS = 16;

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
}

/** An error response in vLLM's `ErrorResponse` shape. */
export function vllmError(
  message: string,
  type: string,
  code: number,
): Response {
  return json({ object: "error", message, type, param: null, code }, code);
}

/** A 400 phrased like vLLM's handler for pydantic validation errors. */
function validationError(type: string, field: string, msg: string): Response {
  return vllmError(
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
  if (!isObject(body)) {
    return vllmError(
      "[{'type': 'json_invalid', 'loc': ('body', 0), 'msg': 'JSON decode error'}]",
      "BadRequestError",
      400,
    );
  }
  if (
    body.model !== undefined && body.model !== null &&
    body.model !== served.model
  ) {
    return vllmError(
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
      return validationError("missing", "prompt", "Field required");
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
        "string_type",
        "prompt",
        "Input should be a valid string",
      );
    }
  } else {
    const m = body.messages;
    if (m === undefined || m === null) {
      return validationError("missing", "messages", "Field required");
    }
    if (
      !Array.isArray(m) ||
      !m.every((x) => isObject(x) && typeof x.role === "string")
    ) {
      return validationError(
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
  let maxTokens = DEFAULT_MAX_TOKENS;
  if (raw !== undefined && raw !== null) {
    if (typeof raw !== "number" || !Number.isInteger(raw)) {
      return validationError(
        "int_parsing",
        field,
        "Input should be a valid integer, unable to parse string as an integer",
      );
    }
    if (raw < 1) {
      return vllmError(
        `max_tokens must be at least 1, got ${raw}.`,
        "BadRequestError",
        400,
      );
    }
    maxTokens = raw;
  }
  const perChoicePrompt = Math.ceil(promptTokens / choices);
  if (perChoicePrompt + maxTokens > served.maxModelLen) {
    const where = kind === "chat" ? "messages" : "prompt";
    return vllmError(
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
