/**
 * What {@linkcode EdgeworkerClient} and {@linkcode Session} share: given
 * their `request` and one exchange within a call's deadline, the JSON and
 * the streamed forms of a call.
 *
 * @module
 */
import type { CallOptions } from "./call.ts";
import { type AuthData, eventsOf, readJson } from "./transport.ts";

/** One exchange with a worker: what to send, and what to make of the answer. */
export interface Exchange<O, T> {
  /** Worker route, e.g. `"/v1/chat/completions"`. */
  route: string;
  /** The model payload (JSON-serializable). */
  payload: unknown;
  /** The call's options. */
  options: O | undefined;
  /** Reads the worker's answer within the call's deadline. */
  read: (response: Response, auth: AuthData) => Promise<T> | T;
}

/**
 * A sender of requests to a worker route: an endpoint's client, or one
 * session on a worker.
 */
export abstract class Caller<O extends CallOptions = CallOptions> {
  /**
   * Sends `payload` to `route` on a worker.
   *
   * @returns The worker's response, body unread.
   */
  abstract request(
    route: string,
    payload: unknown,
    options?: O,
  ): Promise<Response>;

  /** Names a call in error messages. */
  protected abstract describe(route: string): string;

  /**
   * Delivers `x.payload` (routing and retrying as the caller does) and
   * reads the answer with `x.read`, all within the call's deadline.
   */
  protected abstract exchange<T>(x: Exchange<O, T>): Promise<T>;

  /**
   * Like `request`, but reads and parses the JSON body (within the
   * deadline).
   *
   * @returns The parsed body, not validated (the type parameter is unchecked).
   * @throws {EdgeworkerError} `http` (with `status` and `body`) on non-2xx,
   *   `invalid_response` on a non-JSON body, plus those of `request`.
   */
  async requestJson<T = unknown>(
    route: string,
    payload: unknown,
    options?: O,
  ): Promise<T> {
    const what = this.describe(route);
    return await this.exchange({
      route,
      payload,
      options,
      read: async (response) => await readJson(response, what) as T,
    });
  }

  /**
   * Like `request`, but yields each event of an SSE (`data: {...}`) or
   * JSON Lines response as parsed JSON, as it arrives. The request starts
   * on the first iteration; the deadline covers getting the response
   * headers, not the stream. Breaking out of the loop closes the stream.
   *
   * @throws {EdgeworkerError} `http` on non-2xx, plus those of `request`.
   */
  async *stream(
    route: string,
    payload: unknown,
    options?: O,
  ): AsyncGenerator<unknown, void, undefined> {
    const response = await this.request(route, payload, options);
    yield* eventsOf(response, this.describe(route));
  }
}
