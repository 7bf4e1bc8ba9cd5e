/**
 * {@linkcode EdgeworkerClient}: calls a Vast.ai serverless endpoint the way
 * Vast's Python client does (route, poll, envelope, retry), with a real
 * overall deadline and bounded retries.
 *
 * @module
 */

import { Caller } from "./caller.ts";
import {
  type Call,
  type CallOptions,
  type EdgeworkerClientOptions,
  resolveConfig,
  type ResolvedConfig,
  runCall,
} from "./call.ts";
import { EdgeworkerError, snippet } from "./errors.ts";
import { type CreateSessionOptions, Session } from "./session.ts";
import {
  acquireWorker,
  type AuthData,
  deliver,
  type Delivered,
  readJson,
} from "./transport.ts";
import { resumable } from "./resume.ts";

/** Options of {@linkcode EdgeworkerClient.request} and friends. */
export interface RequestOptions extends CallOptions {
  /** Load units announced to `/route/` (e.g. max_tokens). Default 100. */
  cost?: number;
  /** Sends this `session_id` in the envelope (normally use {@linkcode Session}). */
  sessionId?: string | null;
}

function checkCost(cost: number): number {
  if (!Number.isFinite(cost) || cost < 0) {
    throw new RangeError(`cost must be a finite number >= 0, got ${cost}`);
  }
  return cost;
}

/**
 * Client for one Vast.ai serverless endpoint.
 *
 * Each call asks the autoscaler (`POST {routeUrl}/route/`) for a worker,
 * polling with the returned `request_idx` while none is ready, then posts
 * `{auth_data, payload, session_id}` to `{worker}{route}`. 408/429/5xx
 * answers and connection errors are re-routed and retried (same
 * `request_idx`) up to `maxRetries`, never past `timeoutMs`; other 4xx
 * answers are returned at once.
 *
 * @example
 * ```ts
 * const client = new EdgeworkerClient({
 *   routeUrl: "https://run.vast.ai",
 *   endpoint: "my-vllm-endpoint",
 *   apiKey: Deno.env.get("ENDPOINT_API_KEY")!,
 * });
 * const completion = await client.requestJson("/v1/completions", {
 *   model: "Qwen/Qwen3-8B",
 *   prompt: "Who are you?",
 *   max_tokens: 200,
 * }, { cost: 200 });
 * for await (const chunk of client.stream("/v1/completions", {
 *   model: "Qwen/Qwen3-8B",
 *   prompt: "Count to ten",
 *   max_tokens: 50,
 *   stream: true,
 * }, { cost: 50 })) {
 *   // chunk is one parsed SSE event
 * }
 * ```
 */
export class EdgeworkerClient extends Caller<RequestOptions> {
  #cfg: ResolvedConfig;

  /**
   * Creates a client; validates the options (throws `RangeError` /
   * `TypeError` on bad values). No network traffic happens here.
   *
   * @param options Endpoint, key and retry/timeout settings.
   */
  constructor(options: EdgeworkerClientOptions) {
    super();
    this.#cfg = resolveConfig(options);
  }

  /** The endpoint name this client routes to. */
  get endpoint(): string {
    return this.#cfg.endpoint;
  }

  #send(
    call: Call,
    route: string,
    payload: unknown,
    options: RequestOptions,
  ): Promise<Delivered> {
    const cost = checkCost(options.cost ?? 100);
    const state = { requestIdx: 0 };
    const target = (): Promise<AuthData> =>
      acquireWorker(this.#cfg, call, cost, state);
    return deliver(
      this.#cfg,
      call,
      route,
      payload,
      options.sessionId ?? null,
      target,
    );
  }

  /**
   * Sends `payload` to `route` on a worker of the endpoint.
   *
   * @param route Worker route, e.g. `"/v1/chat/completions"`.
   * @param payload The model payload (JSON-serializable).
   * @param options Cost, abort signal, timeout override, session id.
   * @returns The worker's response, body unread (streams stay streams).
   *   After exhausted retries this is the last 408/429/5xx answer. A
   *   resumable stream (`X-Edgeworker-Stream-Id`) whose connection breaks
   *   off is resumed from the worker: the body reads on unbroken.
   * @throws {EdgeworkerError} `timeout`, `network` or `route` when no worker
   *   answer could be obtained; the caller's abort reason if aborted.
   */
  async request(
    route: string,
    payload: unknown,
    options: RequestOptions = {},
  ): Promise<Response> {
    return await runCall(this.#cfg, options, async (call) => {
      const { response, auth } = await this.#send(
        call,
        route,
        payload,
        options,
      );
      return resumable(this.#cfg, response, auth, options.signal);
    });
  }

  /**
   * Like {@linkcode EdgeworkerClient.request}, but reads and parses the JSON
   * body (within the deadline).
   *
   * @returns The parsed body, not validated (the type parameter is unchecked).
   * @throws {EdgeworkerError} `http` (with `status` and `body`) on non-2xx,
   *   `invalid_response` on a non-JSON body, plus those of `request`.
   */
  async requestJson<T = unknown>(
    route: string,
    payload: unknown,
    options: RequestOptions = {},
  ): Promise<T> {
    return await runCall(this.#cfg, options, async (call) => {
      const { response } = await this.#send(call, route, payload, options);
      return await readJson(response, this.describe(route)) as T;
    });
  }

  /** Names a call in error messages. */
  protected describe(route: string): string {
    return `${route} on endpoint "${this.#cfg.endpoint}"`;
  }

  /**
   * Opens a session: routes a `/session/create` request like any other and
   * keeps the chosen worker and auth_data for later requests.
   *
   * @param options Cost, lifetime (seconds) and on-close callback.
   * @param callOptions Abort signal and timeout override.
   * @returns The open session.
   * @throws {EdgeworkerError} `http` if the worker refuses (e.g. 429 when
   *   full, after retries), `invalid_response` without a `session_id`.
   */
  async createSession(
    options: CreateSessionOptions,
    callOptions: CallOptions = {},
  ): Promise<Session> {
    if (!Number.isFinite(options.lifetime) || options.lifetime <= 0) {
      throw new RangeError(
        `lifetime must be a positive number of seconds, got ${options.lifetime}`,
      );
    }
    const payload = {
      lifetime: options.lifetime,
      on_close_route: options.onCloseRoute ?? null,
      on_close_payload: options.onClosePayload ?? null,
    };
    return await runCall(this.#cfg, callOptions, async (call) => {
      const opts = { cost: options.cost ?? 100 };
      const { response, auth } = await this.#send(
        call,
        "/session/create",
        payload,
        opts,
      );
      const body = await readJson(
        response,
        `Creating a session on endpoint "${this.#cfg.endpoint}"`,
      );
      const record =
        (typeof body === "object" && body !== null ? body : {}) as Record<
          string,
          unknown
        >;
      const id = record.session_id;
      if (typeof id !== "string" && typeof id !== "number") {
        const text = JSON.stringify(body);
        throw new EdgeworkerError(
          `/session/create returned no session_id: ${snippet(text)}`,
          {
            code: "invalid_response",
            status: response.status,
            body: text,
          },
        );
      }
      const expiration = typeof record.expiration === "number"
        ? record.expiration
        : undefined;
      return new Session(this.#cfg, {
        id: String(id),
        authData: auth,
        expiration,
      });
    });
  }
}
