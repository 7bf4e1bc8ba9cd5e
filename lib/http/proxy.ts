/**
 * Forwarding to the model server and relaying its answer chunk by chunk.
 * The request's ticket decides the outcome exactly once; this module only
 * says what happened (answered, broke off, aborted) and answers the client.
 *
 * @module
 */
import { jsonError } from "./errors.ts";
import {
  type HeaderSource,
  type ModelAnswer,
  type ModelClient,
  type StreamWatch,
  watchedStream,
} from "../model/model_client.ts";
import {
  CLIENT_CLOSED_REQUEST,
  type RequestTicket,
} from "../traffic/ticket.ts";
import { errorText } from "../std/errors.ts";

export { CLIENT_CLOSED_REQUEST };

/**
 * Model response headers a client of an inference API may see. Everything
 * else is dropped: a model server (or a proxy inside the container) must
 * not be able to set cookies, CORS, HSTS, redirects or other
 * browser-facing policy on the worker's public origin. `x-*` headers pass:
 * engines put request ids and timings there (vLLM `x-request-id`, TGI
 * `x-compute-time`, `x-generated-tokens`, ...).
 */
export const RELAYED_HEADERS: ReadonlySet<string> = new Set([
  "content-type",
  "content-length",
  "content-language",
  "content-disposition",
  "cache-control",
  "retry-after",
  "etag",
  "last-modified",
  "expires",
]);

// Browser-facing policy spelled with an x- prefix; never relayed.
const DROPPED_X_HEADERS = new Set([
  "x-frame-options",
  "x-xss-protection",
  "x-content-type-options",
  "x-permitted-cross-domain-policies",
  "x-powered-by",
  "x-forwarded-for",
  "x-forwarded-host",
  "x-forwarded-proto",
]);

/** Options of {@linkcode callModel}. */
export interface CallModelOptions {
  /** JSON text of the payload. */
  body: string;
  /** The client's `Accept` header, passed on. */
  accept?: string | null;
  /** The request's signal: client gone, timeout or shutdown. */
  signal: AbortSignal;
  /** The pool of connections to the model server. */
  client: ModelClient;
}

/** The model server's answer, or why there is none. */
export type ModelCall =
  | { ok: true; response: ModelAnswer }
  | { ok: false; aborted: true }
  | { ok: false; aborted: false; status: 502; detail: string };

/**
 * POSTs the payload to the model server, exactly once (the client never
 * resends: a connection that closes before the answer is a 502, as is one
 * that cannot be made). An abort (the ticket's signal) is left to the
 * ticket to name.
 */
export async function callModel(
  url: string,
  options: CallModelOptions,
): Promise<ModelCall> {
  try {
    const response = await options.client.post(
      url,
      encoder.encode(options.body),
      options.accept,
      options.signal,
    );
    return { ok: true, response };
  } catch (e) {
    if (options.signal.aborted) return { ok: false, aborted: true };
    return {
      ok: false,
      aborted: false,
      status: 502,
      detail: `model server unreachable: ${errorText(e)}`,
    };
  }
}

const encoder = new TextEncoder();

/** A `Response` (a local handler's, a response generator's) as a model answer. */
export function answerOf(response: Response): ModelAnswer {
  return new ResponseAnswer(response);
}

class ResponseAnswer implements ModelAnswer {
  readonly response: Response;
  constructor(response: Response) {
    this.response = response;
  }
  get status(): number {
    return this.response.status;
  }
  get headers(): Headers {
    return this.response.headers;
  }
  get hasBody(): boolean {
    return this.response.body !== null;
  }
  bytes(): Promise<Uint8Array<ArrayBuffer>> {
    return this.response.bytes();
  }
  stream(watch?: StreamWatch): ReadableStream<Uint8Array> {
    const body = this.response.body ??
      new ReadableStream({ start: (c) => c.close() });
    return watch ? watchedStream(body, watch) : body;
  }
  async cancel(): Promise<void> {
    await this.response.body?.cancel().catch(() => {});
  }
}

/**
 * `answer` as a `Response` (what a response generator takes): the same
 * object for an answer made from one, else a new one around its body.
 */
export function responseOf(answer: ModelAnswer): Response {
  if (answer instanceof ResponseAnswer) return answer.response;
  return new Response(answer.hasBody ? answer.stream() : null, {
    status: answer.status,
    headers: [...answer.headers],
  });
}

/**
 * Response headers safe to pass to the client (see
 * {@linkcode RELAYED_HEADERS}), added to `out` (new when absent). Adding
 * them to the answer's own headers costs half of handing a `Headers` to
 * `new Response`, which copies each one again.
 */
export function relayHeaders(
  upstream: HeaderSource,
  out: Headers = new Headers(),
): Headers {
  // Headers the Connection header names are hop-by-hop (RFC 9110 7.6.1).
  const hop = upstream.get("connection")?.toLowerCase().split(",")
    .map((h) => h.trim());
  for (const [name, value] of upstream) {
    if (
      RELAYED_HEADERS.has(name) ||
      (name.startsWith("x-") && !DROPPED_X_HEADERS.has(name) &&
        !hop?.includes(name))
    ) out.append(name, value);
  }
  // The body was decoded (by the model client or fetch), so its length no
  // longer describes it.
  if (upstream.has("content-encoding")) out.delete("content-length");
  return out;
}

/**
 * Whether an answer is a stream to pass on chunk by chunk: SSE, NDJSON or
 * JSON lines, any "stream" content type, or a body of unknown length
 * (chunked), as the Python worker decides.
 */
export function isStreaming(headers: HeaderSource): boolean {
  const type = (headers.get("content-type") ?? "").toLowerCase();
  if (
    type.startsWith("text/event-stream") || type.includes("ndjson") ||
    type.includes("jsonl") || type.includes("stream")
  ) return true;
  return !headers.has("content-length");
}

/**
 * Headers of a relayed stream: a reverse proxy in front (nginx, a CDN)
 * must neither buffer it (`X-Accel-Buffering: no`) nor transform it
 * (`no-transform` joins the model's own `Cache-Control`).
 */
export function streamHeaders(headers: Headers): void {
  headers.set("x-accel-buffering", "no");
  const cc = headers.get("cache-control");
  if (!cc) headers.set("cache-control", "no-transform");
  else if (!/(^|,)\s*no-transform\s*(,|$)/i.test(cc)) {
    headers.set("cache-control", `${cc}, no-transform`);
  }
}

/** The answer to a request that ended aborted: 504/429 naming the limit, or none (499). */
export function abortedAnswer(ticket: RequestTicket, status: number): Response {
  const timeout = ticket.timeout;
  if (!timeout) return new Response(null, { status });
  if (timeout.kind === "queue") {
    return jsonError(429, {
      error:
        `waited longer than max_queue_time (${timeout.seconds} s) for a slot`,
      timeout: "queue",
      max_queue_time: timeout.seconds,
    }, { "retry-after": String(Math.max(1, Math.ceil(timeout.seconds))) });
  }
  return jsonError(504, {
    error:
      `model server exceeded the ${timeout.kind} timeout of ${timeout.seconds} s`,
    timeout: timeout.kind,
    seconds: timeout.seconds,
  });
}

/**
 * Takes over a streamed answer (body, status, relayed headers) in place of
 * the plain relay: a resumable stream (`resume_route.ts`).
 */
export type ResumeHook = (
  body: ReadableStream<Uint8Array>,
  status: number,
  headers: Headers,
) => Response;

/** What a handler adds to {@linkcode relay}. */
export interface RelayOptions {
  /** Why an answer body reports a failure under any status, if it does. */
  failureOf?: (body: string) => string | undefined;
  /** Takes a streamed answer over (resumable streams). */
  resume?: ResumeHook;
}

/**
 * Passes the model's answer on and ends the ticket with its outcome: the
 * body ended (success), the model server broke off (error), a timeout
 * expired (error, 504), or the client went away (cancelled). Streams are
 * relayed chunk by chunk as they arrive (pull-based, nothing buffered); an
 * answer of known length that is not a stream is read whole first, which
 * is far cheaper than a JS stream and lets a model server that breaks off
 * be answered with a clear 502. A status HTTP cannot carry (outside
 * 200–599) is the model server's fault: 502. With `failureOf` (the
 * handler's `failureBody`) the answer is read whole, and one it names a
 * failure is relayed unchanged but ends the ticket as an error (a relayed
 * status alone, 5xx included, does not: the Python worker counts those as
 * served too). With `resume`, a stream is handed to it instead (it ends
 * the ticket).
 */
export async function relay(
  response: ModelAnswer,
  ticket: RequestTicket,
  options: RelayOptions = {},
): Promise<Response> {
  const { failureOf, resume } = options;
  const status = response.status;
  if (status < 200 || status > 599) {
    await response.cancel();
    const detail = `model server answered with status ${status}`;
    ticket.end("error", 502, detail);
    return jsonError(502, { error: detail });
  }
  ticket.answering();
  if (!response.hasBody) {
    ticket.end("success", status);
    return relayed(new Response(null, { status }), response.headers);
  }
  // A failure rule reads JSON answers whole (chunked ones too); a stream of
  // any other type stays a stream.
  const judged = failureOf !== undefined &&
    (response.headers.get("content-type") ?? "").includes("json");
  if (!isStreaming(response.headers) || judged) {
    try {
      const bytes = await response.bytes();
      ticket.chunk();
      const failure = judged
        ? failureOf(new TextDecoder().decode(bytes))
        : undefined;
      if (failure) ticket.end("error", status, failure);
      else ticket.end("success", status);
      return relayed(new Response(bytes, { status }), response.headers);
    } catch (e) {
      if (ticket.signal.aborted) {
        return abortedAnswer(ticket, ticket.endAborted("reading the answer"));
      }
      const detail = `model server broke off its answer: ${errorText(e)}`;
      ticket.end("error", 502, detail);
      return jsonError(502, { error: detail });
    }
  }
  if (resume) {
    const headers = relayHeaders(response.headers);
    streamHeaders(headers);
    return resume(response.stream(), status, headers);
  }
  const body = response.stream({
    pulling: () => ticket.pulling(),
    chunk: () => ticket.chunk(),
    done: () => ticket.end("success", status),
    failed(e) {
      if (ticket.signal.aborted) ticket.endAborted("while streaming");
      else ticket.end("error", status, `model stream broke: ${errorText(e)}`);
    },
    cancelled() {
      ticket.end("cancelled", CLIENT_CLOSED_REQUEST, "client disconnected");
      ticket.cancel("client disconnected");
    },
  });
  const answer = relayed(new Response(body, { status }), response.headers);
  streamHeaders(answer.headers);
  return answer;
}

/** `answer` with the model's relayed headers added to its own. */
function relayed(answer: Response, upstream: HeaderSource): Response {
  relayHeaders(upstream, answer.headers);
  return answer;
}
