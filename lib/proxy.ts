/**
 * Forwarding to the model server and relaying its answer chunk by chunk,
 * with the request's outcome decided exactly once.
 *
 * @module
 */
import { jsonError } from "./http.ts";
import type { RequestOutcome } from "./ledger.ts";

// https://datatracker.ietf.org/doc/html/rfc9110#section-7.6.1
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];

/** Status recorded when the client went away (never delivered). */
export const CLIENT_CLOSED_REQUEST = 499;

/** Callbacks that account for one relayed request. */
export interface RelayHooks {
  /** The first body chunk reached the client. */
  onFirstByte?: () => void;
  /** A body chunk was relayed. */
  onChunk?: () => void;
  /** Called exactly once with the final outcome. */
  onEnd: (outcome: RequestOutcome, status: number, detail?: string) => void;
}

/** Options of {@linkcode callModel}. */
export interface CallModelOptions {
  /** JSON text of the payload. */
  body: string;
  /** The client's `Accept` header, passed on. */
  accept?: string | null;
  /**
   * The request's controller: aborted when the client goes away (or the
   * worker stops); a cancel from the relay aborts it too.
   */
  abort: AbortController;
  /** Milliseconds until response headers; none when undefined. */
  responseTimeoutMs?: number;
  /** Milliseconds for the whole exchange, body included. */
  requestTimeoutMs?: number;
}

/** The model server's answer, or why there is none. */
export type ModelCall =
  | { ok: true; response: Response }
  | { ok: false; outcome: RequestOutcome; status: number; detail: string };

/**
 * POSTs the payload to the model server. Connection failures and timeouts
 * become a status the worker answers with (502, 504), a client that left
 * becomes 499.
 */
export async function callModel(
  url: string,
  options: CallModelOptions,
): Promise<ModelCall> {
  const signals = [options.abort.signal];
  if (options.requestTimeoutMs) {
    signals.push(AbortSignal.timeout(options.requestTimeoutMs));
  }
  let headerTimer: ReturnType<typeof setTimeout> | undefined;
  let headerTimedOut = false;
  if (options.responseTimeoutMs) {
    const timeout = new AbortController();
    signals.push(timeout.signal);
    headerTimer = setTimeout(() => {
      headerTimedOut = true;
      timeout.abort(new DOMException("response timeout", "TimeoutError"));
    }, options.responseTimeoutMs);
  }
  const headers: Record<string, string> = {
    "content-type": "application/json",
  };
  if (options.accept) headers.accept = options.accept;
  try {
    const response = await fetch(url, {
      method: "POST",
      body: options.body,
      headers,
      // Without timeouts no combined signal is needed (it costs per request).
      signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals),
    });
    return { ok: true, response };
  } catch (e) {
    if (options.abort.signal.aborted) {
      return {
        ok: false,
        outcome: "cancelled",
        status: CLIENT_CLOSED_REQUEST,
        detail: "client disconnected before the model answered",
      };
    }
    const timedOut = headerTimedOut ||
      (e instanceof DOMException && e.name === "TimeoutError");
    const cause = e instanceof Error ? e.message : String(e);
    return timedOut
      ? {
        ok: false,
        outcome: "error",
        status: 504,
        detail: `model server did not answer in time: ${cause}`,
      }
      : {
        ok: false,
        outcome: "error",
        status: 502,
        detail: `model server unreachable: ${cause}`,
      };
  } finally {
    clearTimeout(headerTimer);
  }
}

/** Response headers safe to pass to the client. */
export function relayHeaders(upstream: Headers): Headers {
  const out = new Headers(upstream);
  const named = upstream.get("connection");
  if (named) {
    for (const h of named.split(",")) out.delete(h.trim());
  }
  for (const h of HOP_BY_HOP) out.delete(h);
  // fetch already decoded the body, so these no longer describe it.
  if (out.has("content-encoding")) {
    out.delete("content-encoding");
    out.delete("content-length");
  }
  return out;
}

/**
 * Whether an answer is a stream to pass on chunk by chunk: SSE, NDJSON or
 * JSON lines, any "stream" content type, or a body of unknown length
 * (chunked), as the Python worker decides.
 */
export function isStreaming(headers: Headers): boolean {
  const type = (headers.get("content-type") ?? "").toLowerCase();
  if (
    type.startsWith("text/event-stream") || type.includes("ndjson") ||
    type.includes("jsonl") || type.includes("stream")
  ) return true;
  return !headers.has("content-length");
}

/**
 * Passes the model's answer on and learns its outcome: the body ended
 * (success), the model server broke off (error), or the client went away
 * (cancelled). Streams are relayed chunk by chunk as they arrive (pull-based,
 * nothing buffered); an answer of known length that is not a stream is read
 * whole first, which is far cheaper than a JS stream and lets a model server
 * that breaks off be answered with a clear 502.
 */
export async function relay(
  response: Response,
  options: { signal: AbortSignal; abort?: AbortController; hooks: RelayHooks },
): Promise<Response> {
  const { hooks, signal } = options;
  let ended = false;
  const end = (outcome: RequestOutcome, status: number, detail?: string) => {
    if (ended) return;
    ended = true;
    hooks.onEnd(outcome, status, detail);
  };
  const status = response.status;
  const headers = relayHeaders(response.headers);
  if (response.body === null) {
    end("success", status);
    return new Response(null, { status, headers });
  }
  if (!isStreaming(response.headers)) {
    try {
      const bytes = await response.arrayBuffer();
      hooks.onFirstByte?.();
      hooks.onChunk?.();
      end("success", status);
      return new Response(bytes, { status, headers });
    } catch (e) {
      const detail = e instanceof Error ? e.message : String(e);
      if (signal.aborted) {
        end("cancelled", CLIENT_CLOSED_REQUEST, detail);
        return new Response(null, { status: CLIENT_CLOSED_REQUEST });
      }
      end("error", 502, `model server broke off its answer: ${detail}`);
      return jsonError(502, {
        error: `model server broke off its answer: ${detail}`,
      });
    }
  }
  const reader = response.body.getReader();
  let first = true;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          end("success", status);
          return;
        }
        if (first) {
          first = false;
          hooks.onFirstByte?.();
        }
        hooks.onChunk?.();
        controller.enqueue(value);
      } catch (e) {
        const detail = e instanceof Error ? e.message : String(e);
        if (signal.aborted) end("cancelled", CLIENT_CLOSED_REQUEST, detail);
        else end("error", status, `model stream broke: ${detail}`);
        controller.error(e);
      }
    },
    cancel(reason) {
      end("cancelled", CLIENT_CLOSED_REQUEST, "client disconnected");
      options.abort?.abort(reason);
      return reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
  return new Response(body, { status, headers });
}
