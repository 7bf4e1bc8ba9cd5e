/**
 * Sessions: a worker reserved for a series of requests (SDK >= 1.1.0).
 *
 * @module
 */

import { Caller } from "./caller.ts";
import { resumable } from "./resume.ts";
import {
  type Call,
  type CallOptions,
  type ResolvedConfig,
  runCall,
} from "./call.ts";
import { EdgeworkerError, snippet } from "./errors.ts";
import { type AuthData, deliver, joinUrl, readJson } from "./transport.ts";

/** Options of {@linkcode EdgeworkerClient.createSession}. */
export interface CreateSessionOptions {
  /** Load the session holds on its worker while open. Default 100. */
  cost?: number;
  /** Seconds of inactivity before the worker closes it; each request extends it. */
  lifetime: number;
  /** Route the worker calls (on its model server) when the session closes. */
  onCloseRoute?: string;
  /** Payload for `onCloseRoute`; the worker adds `session_id`. */
  onClosePayload?: unknown;
}

/** What {@linkcode Session} is built from. */
export interface SessionInit {
  /** Session id from `/session/create`. */
  id: string;
  /** The route answer the session was created with. */
  authData: AuthData;
  /** Expiration (epoch seconds) reported at creation, if any. */
  expiration: number | undefined;
}

/**
 * An open session on one worker, created by
 * {@linkcode EdgeworkerClient.createSession}. Its requests skip `/route/`,
 * go to the same worker and carry the `session_id`. A 410 answer (the worker
 * no longer knows the session) closes it; later calls then throw an
 * {@linkcode EdgeworkerError} with code `session_closed`.
 *
 * @example
 * ```ts
 * import { EdgeworkerClient } from "./client.ts";
 * const client = new EdgeworkerClient({ endpoint: "my-endpoint", apiKey: "..." });
 * await using session = await client.createSession({ lifetime: 120 });
 * const res = await session.request("/v1/chat/completions", {
 *   messages: [{ role: "user", content: "Hi" }],
 * });
 * ```
 */
export class Session extends Caller<CallOptions> {
  /** The session id. */
  readonly id: string;
  /** Base URL of the worker holding the session. */
  readonly url: string;
  /** The route answer the session was created with (sent with every request). */
  readonly authData: AuthData;
  /** Expiration (epoch seconds) reported at creation, if any. */
  readonly expiration: number | undefined;
  #cfg: ResolvedConfig;
  #closed = false;

  /** Use {@linkcode EdgeworkerClient.createSession} instead. */
  constructor(cfg: ResolvedConfig, init: SessionInit) {
    super();
    this.#cfg = cfg;
    this.id = init.id;
    this.authData = init.authData;
    this.url = init.authData.url;
    this.expiration = init.expiration;
  }

  /** True once the session has ended or the worker answered 410. */
  get closed(): boolean {
    return this.#closed;
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new EdgeworkerError(
        `Session "${this.id}" on ${this.url} is closed`,
        {
          code: "session_closed",
          status: 410,
        },
      );
    }
  }

  /**
   * Posts `payload` to `route` on the session's worker. 408/429/5xx answers
   * and connection errors are retried on the same worker; other answers are
   * returned with the body unread.
   *
   * @param route Worker route, e.g. `"/v1/chat/completions"`.
   * @param payload The model payload (JSON-serializable).
   * @param options Abort signal and timeout override.
   * @returns The worker's response.
   */
  async request(
    route: string,
    payload: unknown,
    options: CallOptions = {},
  ): Promise<Response> {
    const response = await runCall(
      this.#cfg,
      options,
      (call) => this.#send(call, route, payload),
    );
    return resumable(this.#cfg, response, this.authData, options.signal);
  }

  /**
   * Like {@linkcode Session.request} but returns the parsed JSON body.
   *
   * @returns The body, not validated (the type parameter is unchecked).
   * @throws {EdgeworkerError} `http` on non-2xx, `invalid_response` on non-JSON.
   */
  async requestJson<T = unknown>(
    route: string,
    payload: unknown,
    options: CallOptions = {},
  ): Promise<T> {
    return await runCall(this.#cfg, options, async (call) => {
      const response = await this.#send(call, route, payload);
      return await readJson(response, this.describe(route)) as T;
    });
  }

  /** One delivery to the session's worker; a 410 closes the session. */
  async #send(call: Call, route: string, payload: unknown): Promise<Response> {
    this.#assertOpen();
    const auth = this.authData;
    const { response } = await deliver(
      this.#cfg,
      call,
      route,
      payload,
      this.id,
      () => Promise.resolve(auth),
    );
    if (response.status === 410) this.#closed = true;
    return response;
  }

  /** Names a call in error messages. */
  protected describe(route: string): string {
    return `${route} (session "${this.id}")`;
  }

  /**
   * Ends the session (`POST /session/end`). Resolves once the worker has
   * closed it, or if it was already gone (400/410); does nothing if the
   * session is already closed.
   *
   * @throws {EdgeworkerError} `http` on any other failure.
   */
  async end(options: CallOptions = {}): Promise<void> {
    if (this.#closed) return;
    await runCall(this.#cfg, options, async (call) => {
      call.phase = "worker";
      call.workerUrl = this.url;
      const headers = new Headers({ "content-type": "application/json" });
      if (this.#cfg.apiKey) {
        headers.set("authorization", `Bearer ${this.#cfg.apiKey}`);
      }
      const response = await this.#cfg.fetch(
        joinUrl(this.url, "/session/end"),
        {
          method: "POST",
          headers,
          body: JSON.stringify({
            session_id: this.id,
            session_auth: this.authData,
          }),
          signal: call.signal,
        },
      );
      const text = await response.text();
      if (response.ok || response.status === 400 || response.status === 410) {
        this.#closed = true;
        return;
      }
      throw new EdgeworkerError(
        `Ending session "${this.id}" failed: HTTP ${response.status} ${
          snippet(text)
        }`.trim(),
        { code: "http", status: response.status, body: text },
      );
    });
  }

  /** Ends the session when leaving an `await using` block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.end();
  }
}
