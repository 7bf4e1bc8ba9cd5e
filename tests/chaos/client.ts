/**
 * What every chaos ingredient shares: the request context (signed
 * `auth_data`, envelope text, the worker's address), the verdict an
 * ingredient returns, and the checks of what a client sees.
 *
 * @module
 */
import type { Rng } from "./rng.ts";

/** A `/delete_requests/` status, as the worker writes it. */
export type DeleteStatus = "Success" | "Error" | "Cancelled" | "Rejected";

/** An allowed report of a request: a status, or none at all. */
export type Expected = DeleteStatus | "absent";

/** What an ingredient concluded about one request. */
export interface Verdict {
  /**
   * Delete statuses allowed for this `request_idx` (it must be reported
   * exactly once, with one of them; `"absent"` in the list: or never, as
   * when the client left before the worker admitted it), or `"none"`: it
   * must never be reported (the worker never opened a record: bad body,
   * left mid-body), or `"any"`: at most once, with any status (the answer
   * was already wrong, and that is the problem reported).
   */
  record: "none" | "any" | readonly Expected[];
  /** What the client saw, short (e.g. `200 relayed`, `left`, `422`). */
  seen: string;
  /** What the client saw that it should not have. */
  problems: string[];
  /** It also sent one plain helper request (`request_idx` + `WARM_IDX`,
   * workload 1) that must be reported once as `Success`. */
  helper?: boolean;
}

/** Everything an ingredient needs for one request. */
export interface RequestCtx {
  /** This request's `request_idx` (unique in the run). */
  idx: number;
  /** This request's own random stream (same seed + idx, same draws). */
  rng: Rng;
  /** Worker base URL and port. */
  base: string;
  port: number;
  /** Handler route picked for it. */
  route: string;
  /** Body limit the worker was started with (undefined: none). */
  maxBodyBytes: number | undefined;
  /** The worker's `timeouts.firstByte`, in ms. */
  firstByteTimeoutMs: number;
  /** A valid signed `auth_data` for this request, with `over` on top. */
  auth(over?: Record<string, unknown>): Record<string, unknown>;
  /** Signs the url-only message for `url` with the autoscaler key. */
  signUrl(url: string): Promise<string>;
  /** Aborts when the request's time is up (the harness's hard deadline):
   * every fetch of the request uses it, so a worker that never answers
   * cannot hang the run. */
  signal: AbortSignal;
  /** The workload the worker should count for it (set by the ingredient). */
  workload?: number;
  /** `false` when its workload is not a plain number (sums unknowable). */
  saneWorkload?: boolean;
}

/** A valid envelope's JSON text for `payload` (and `auth` overrides). */
export function envelopeText(
  ctx: RequestCtx,
  payload: Record<string, unknown>,
  auth: Record<string, unknown> = {},
): string {
  return JSON.stringify({ auth_data: ctx.auth(auth), payload });
}

/** The standard payload: `chaos` behaviour, `idx`, a small `max_tokens`. */
export function payloadOf(
  ctx: RequestCtx,
  chaos: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const maxTokens = ctx.rng.int(1, 64);
  ctx.workload = maxTokens;
  return { chaos, idx: ctx.idx, max_tokens: maxTokens, ...extra };
}

/** POSTs `body` to the request's route. */
export function send(
  ctx: RequestCtx,
  body: BodyInit,
  init: RequestInit = {},
  path: string = ctx.route,
): Promise<Response> {
  return fetch(ctx.base + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    ...init,
    signal: init.signal
      ? AbortSignal.any([init.signal, ctx.signal])
      : ctx.signal,
  });
}

/** `true` if the model wrote this answer (the worker relayed it). */
export function relayed(res: Response | { headers: Headers }): boolean {
  return res.headers.get("x-chaos-model") === "1";
}

/** Reads a body to its end; `broke` when it ended in an error. */
export async function readBody(
  res: Response,
): Promise<{ text: string; broke: boolean }> {
  const decoder = new TextDecoder();
  let text = "";
  try {
    for await (const c of res.body!) {
      text += decoder.decode(c, { stream: true });
    }
    return { text, broke: false };
  } catch {
    return { text, broke: true };
  }
}

/**
 * Reads `events` SSE events (or fewer if the body ends), then leaves by
 * aborting `abort`. Resolves to how many events arrived.
 */
export async function readEventsThenLeave(
  res: Response,
  events: number,
  abort: AbortController,
): Promise<number> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let seen = 0;
  try {
    while (seen < events) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      seen = buf.split("\n\n").length - 1;
    }
  } catch { /* broke: counts as left */ }
  abort.abort();
  await reader.cancel().catch(() => {});
  return seen;
}

/**
 * Problems with an answer the worker itself wrote (not relayed): it must
 * carry a JSON object body, and its status must be one of `statuses`.
 */
export function checkWorkerAnswer(
  status: number,
  contentType: string | null,
  text: string,
  statuses: readonly number[],
): string[] {
  const problems: string[] = [];
  if (!statuses.includes(status)) {
    problems.push(`worker answered ${status}, expected ${statuses.join("/")}`);
  }
  if (!(contentType ?? "").includes("application/json")) {
    problems.push(`${status} without a JSON content-type`);
  }
  try {
    const body = JSON.parse(text);
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      problems.push(
        `${status} body is not a JSON object: ${text.slice(0, 80)}`,
      );
    }
  } catch {
    problems.push(
      `${status} body is not JSON: ${JSON.stringify(text.slice(0, 80))}`,
    );
  }
  return problems;
}

/** The verdict for a worker-written error that opens no record. */
export async function expectWorkerError(
  res: Response,
  statuses: readonly number[],
  record: Verdict["record"] = "none",
): Promise<Verdict> {
  const { text } = await readBody(res);
  if (relayed(res)) {
    return {
      record: "any",
      seen: `${res.status} relayed`,
      problems: [
        `expected a worker error ${
          statuses.join("/")
        }, got the model's ${res.status}`,
      ],
    };
  }
  return {
    record,
    seen: String(res.status),
    problems: checkWorkerAnswer(
      res.status,
      res.headers.get("content-type"),
      text,
      statuses,
    ),
  };
}

/** A short description of a thrown error. */
export function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** `true` for the error `fetch` throws when we aborted it. */
export function isAbort(e: unknown): boolean {
  return e instanceof DOMException && e.name === "AbortError";
}
