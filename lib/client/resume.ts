/**
 * Automatic resume of a worker's resumable stream: when the connection of
 * an answer that carries `X-Edgeworker-Stream-Id` breaks off, the body is
 * continued from `POST {worker}/resume/<id>` with the request's
 * `auth_data` and the number of bytes already read, so the caller reads
 * one unbroken body (each byte once, in order).
 *
 * @module
 */

import { delay } from "../std/async.ts";
import { jitter, type ResolvedConfig } from "./call.ts";
import { describe, EdgeworkerError, snippet } from "./errors.ts";
import {
  type AuthData,
  isRetryableStatus,
  joinUrl,
  jsonHeaders,
} from "./transport.ts";

/** The header naming a resumable stream (the worker's `STREAM_ID_HEADER`). */
export const STREAM_ID_HEADER = "x-edgeworker-stream-id";

// Thrown out of the retry loop as is: the worker refused for good.
class Refused extends Error {
  constructor(readonly error: EdgeworkerError) {
    super(error.message);
  }
}

/**
 * `response` with a body that resumes itself when the connection breaks
 * (up to `maxRetries` tries in a row, with the client's backoff); the
 * response itself when it is not a resumable stream. `signal` stops it.
 */
export function resumable(
  cfg: ResolvedConfig,
  response: Response,
  auth: AuthData,
  signal?: AbortSignal,
): Response {
  const id = response.headers.get(STREAM_ID_HEADER);
  if (!id || !response.ok || !response.body) return response;
  let reader: ReadableStreamDefaultReader<Uint8Array> = response.body
    .getReader();
  let offset = 0;
  let tries = 0;

  const reopen = async (
    cause: unknown,
  ): Promise<ReadableStreamDefaultReader<Uint8Array>> => {
    let last = cause;
    while (true) {
      if (signal?.aborted) throw signal.reason;
      if (tries >= cfg.maxRetries) {
        throw new EdgeworkerError(
          `Stream ${id} from worker ${auth.url} broke off after ${offset} bytes and could not be resumed in ${tries} tries: ${
            describe(last)
          }`,
          { code: "network", cause: last },
        );
      }
      await delay(jitter(cfg.backoffInitialMs, cfg.backoffMaxMs, tries++), {
        signal,
      });
      try {
        const res = await cfg.fetch(joinUrl(auth.url, `/resume/${id}`), {
          method: "POST",
          headers: jsonHeaders(cfg.apiKey),
          body: JSON.stringify({ auth_data: auth, offset }),
          signal,
        });
        if (res.ok && res.body) return res.body.getReader();
        const text = await res.text();
        const error = new EdgeworkerError(
          `Resuming stream ${id} at byte ${offset} on worker ${auth.url} failed: HTTP ${res.status} ${
            snippet(text)
          }`.trim(),
          { code: "http", status: res.status, body: text },
        );
        if (!isRetryableStatus(res.status)) throw new Refused(error);
        last = error;
      } catch (e) {
        if (e instanceof Refused) throw e.error;
        if (signal?.aborted) throw signal.reason;
        last = e;
      }
    }
  };

  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (true) {
        let failure: unknown;
        try {
          const r = await reader.read();
          if (r.done) {
            controller.close();
            return;
          }
          offset += r.value.length;
          tries = 0;
          controller.enqueue(r.value);
          return;
        } catch (e) {
          failure = e;
        }
        if (signal?.aborted) throw signal.reason;
        reader.cancel().catch(() => {});
        reader = await reopen(failure);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}
