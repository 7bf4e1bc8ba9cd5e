/**
 * A `fetch` for the official `openai` npm package that sends its requests
 * through a Vast.ai serverless endpoint.
 *
 * @module
 */

import type { EdgeworkerClientOptions } from "./call.ts";
import { EdgeworkerClient } from "./client.ts";
import { EdgeworkerError } from "./errors.ts";
import { isRetryableStatus } from "./transport.ts";

/** A function with the signature of `fetch`. */
export type FetchLike = (
  input: string | URL | Request,
  init?: RequestInit,
) => Promise<Response>;

/** Options of {@linkcode edgeworkerFetch}. */
export interface EdgeworkerFetchOptions extends EdgeworkerClientOptions {
  /**
   * Cost announced to `/route/`: a fixed number, or a function of the route
   * and the request body. Default {@linkcode estimateOpenAICost}.
   */
  cost?: number | ((route: string, body: Record<string, unknown>) => number);
}

/**
 * Estimates a request's cost the way Vast's vLLM worker counts workload:
 * the requested output tokens (`max_tokens`, `max_completion_tokens`,
 * `max_output_tokens`), or `fallback` when none is given.
 *
 * @param body The OpenAI request body.
 * @param fallback Cost when the body names no token limit. Default 100.
 * @returns The estimated cost.
 */
export function estimateOpenAICost(
  body: Record<string, unknown>,
  fallback = 100,
): number {
  for (
    const key of ["max_tokens", "max_completion_tokens", "max_output_tokens"]
  ) {
    const value = body[key];
    if (typeof value === "number" && Number.isFinite(value) && value > 0) {
      return value;
    }
  }
  return fallback;
}

/** An OpenAI-style error response made up locally (no worker answered). */
function errorResponse(
  status: number,
  message: string,
  code: string,
): Response {
  return Response.json(
    { error: { message, type: "edgeworker_error", param: null, code } },
    {
      status,
      headers: { "x-should-retry": "false", "x-edgeworker-error": code },
    },
  );
}

function statusFor(err: EdgeworkerError): number {
  if (err.status >= 400) return err.status;
  return err.code === "timeout" ? 504 : 502;
}

/**
 * Creates a `fetch` for `new OpenAI({ fetch })`. Each request's path (e.g.
 * `/v1/chat/completions`, whatever the `baseURL` host) becomes the worker
 * route and its JSON body the payload; the worker's response is returned
 * as is (status, headers, streamed body), so the package's streaming and
 * error mapping work. Answers this client already retried (408/429/5xx)
 * get `x-should-retry: false` so the package does not retry them again;
 * routing failures and timeouts become 502/504 OpenAI-style errors.
 * Only POST requests with JSON bodies are supported.
 *
 * @param options Client options plus the cost rule.
 * @returns A fetch-compatible function.
 *
 * @example
 * ```ts
 * import OpenAI from "openai";
 * import { edgeworkerFetch } from "./openai.ts";
 * const endpointKey = Deno.env.get("VAST_ENDPOINT_KEY") ?? "";
 * const openai = new OpenAI({
 *   baseURL: "http://edgeworker.invalid/v1",
 *   apiKey: "unused",
 *   fetch: edgeworkerFetch({ endpoint: "my-vllm", apiKey: endpointKey }),
 * });
 * const chat = await openai.chat.completions.create({
 *   model: "Qwen/Qwen3-8B",
 *   messages: [{ role: "user", content: "Hi" }],
 *   max_tokens: 64,
 * });
 * ```
 */
export function edgeworkerFetch(options: EdgeworkerFetchOptions): FetchLike {
  const client = new EdgeworkerClient(options);
  const costRule = options.cost;
  return async (input, init) => {
    const request = new Request(input, init);
    const signal = init?.signal ??
      (input instanceof Request ? input.signal : undefined) ?? undefined;
    const route = new URL(request.url).pathname;
    if (request.method !== "POST") {
      await request.body?.cancel();
      return errorResponse(
        405,
        `edgeworkerFetch only supports POST (got ${request.method} ${route})`,
        "method",
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(await request.text());
    } catch {
      body = undefined;
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return errorResponse(
        400,
        `edgeworkerFetch needs a JSON object body (${route})`,
        "body",
      );
    }
    const record = body as Record<string, unknown>;
    const cost = typeof costRule === "function"
      ? costRule(route, record)
      : costRule ?? estimateOpenAICost(record);
    let response: Response;
    try {
      response = await client.request(route, record, { cost, signal });
    } catch (err) {
      if (err instanceof EdgeworkerError) {
        return errorResponse(statusFor(err), err.message, err.code);
      }
      throw err;
    }
    if (!isRetryableStatus(response.status)) return response;
    const headers = new Headers(response.headers);
    headers.set("x-should-retry", "false");
    return new Response(response.body, {
      status: response.status,
      statusText: response.statusText,
      headers,
    });
  };
}
