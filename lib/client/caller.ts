/**
 * What {@linkcode EdgeworkerClient} and {@linkcode Session} share: given
 * their `request`, the streamed form of a call.
 *
 * @module
 */
import type { CallOptions } from "./call.ts";
import { eventsOf } from "./transport.ts";

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
