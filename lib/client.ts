/**
 * The edgeworker client: calls Vast.ai serverless endpoints (route, poll,
 * envelope, bounded retries, sessions, streaming) and plugs into the
 * official `openai` package through {@linkcode edgeworkerFetch}.
 *
 * @example
 * ```ts
 * import { EdgeworkerClient } from "./lib/client.ts";
 * const client = new EdgeworkerClient({ endpoint: "my-endpoint", apiKey: key });
 * const out = await client.requestJson("/v1/completions", { prompt: "Hi", max_tokens: 16 }, { cost: 16 });
 * ```
 *
 * @module
 */

export { EdgeworkerClient, type RequestOptions } from "./client/client.ts";
export type { CallOptions, EdgeworkerClientOptions } from "./client/call.ts";
export {
  EdgeworkerError,
  type EdgeworkerErrorCode,
  type EdgeworkerErrorInit,
} from "./client/errors.ts";
export {
  type CreateSessionOptions,
  Session,
  type SessionInit,
} from "./client/session.ts";
export type { AuthData } from "./client/transport.ts";
export {
  edgeworkerFetch,
  type EdgeworkerFetchOptions,
  estimateOpenAICost,
  type FetchLike,
} from "./client/openai.ts";
export {
  EventStreamParser,
  eventStreamTransform,
  parseEventStream,
} from "./sse.ts";
