/**
 * The edgeworker client: calls Vast.ai serverless endpoints (route, poll,
 * envelope, bounded retries, sessions, streaming) and plugs into the
 * official `openai` package through {@linkcode edgeworkerFetch}.
 *
 * @example
 * ```ts
 * import { EdgeworkerClient } from "./client.ts";
 * const client = new EdgeworkerClient({
 *   endpoint: "my-endpoint",
 *   apiKey: Deno.env.get("VAST_ENDPOINT_KEY") ?? "",
 * });
 * const out = await client.requestJson("/v1/completions", { prompt: "Hi", max_tokens: 16 }, { cost: 16 });
 * ```
 *
 * @module
 */

export { EdgeworkerClient, type RequestOptions } from "./lib/client/client.ts";
export { Caller } from "./lib/client/caller.ts";
export type {
  CallOptions,
  EdgeworkerClientOptions,
} from "./lib/client/call.ts";
export {
  EdgeworkerError,
  type EdgeworkerErrorCode,
  type EdgeworkerErrorInit,
} from "./lib/client/errors.ts";
export {
  type CreateSessionOptions,
  Session,
  type SessionInit,
} from "./lib/client/session.ts";
export type { AuthData } from "./lib/client/transport.ts";
export {
  edgeworkerFetch,
  type EdgeworkerFetchOptions,
  estimateOpenAICost,
  type FetchLike,
} from "./lib/client/openai.ts";
export {
  EventStreamParser,
  eventStreamTransform,
  parseEventStream,
} from "./lib/client/sse.ts";
