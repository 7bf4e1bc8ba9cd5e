/**
 * Forwarding to the model server and relaying its answer chunk by chunk,
 * with the request's outcome decided exactly once.
 *
 * @module
 */
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
  /** Fires when the client goes away. */
  signal: AbortSignal;
  /** Milliseconds until response headers; none when undefined. */
  responseTimeoutMs?: number;
  /** Milliseconds for the whole exchange, body included. */
  requestTimeoutMs?: number;
}

/** The model server's answer, or why there is none. */
export type ModelCall =
  | { ok: true; response: Response; abort: AbortController }
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
  const abort = new AbortController();
  const signals = [options.signal, abort.signal];
  if (options.requestTimeoutMs) {
    signals.push(AbortSignal.timeout(options.requestTimeoutMs));
  }
  let headerTimer: ReturnType<typeof setTimeout> | undefined;
  let headerTimedOut = false;
  if (options.responseTimeoutMs) {
    headerTimer = setTimeout(() => {
      headerTimedOut = true;
      abort.abort(new DOMException("response timeout", "TimeoutError"));
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
      signal: AbortSignal.any(signals),
    });
    return { ok: true, response, abort };
  } catch (e) {
    if (options.signal.aborted) {
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
 * Wraps a response so each chunk is passed on as it arrives (pull-based, no
 * buffering) and the outcome is known: the body ended (success), the model
 * server broke off (error), or the client went away (cancelled).
 */
export function relay(
  response: Response,
  options: { signal: AbortSignal; abort?: AbortController; hooks: RelayHooks },
): Response {
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
