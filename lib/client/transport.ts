/**
 * The wire protocol: `/route/` polling and the worker envelope, with
 * bounded retries. Used by {@linkcode EdgeworkerClient} and
 * {@linkcode Session}.
 *
 * Longer than most modules: routing, polling and delivery share one retry
 * state per call (request_idx, attempts, the deadline).
 *
 * @module
 */

import { parseEventStream } from "./sse.ts";
import {
  type Call,
  jitter,
  parseRetryAfter,
  type ResolvedConfig,
} from "./call.ts";
import { describe, EdgeworkerError, snippet } from "./errors.ts";

/**
 * The autoscaler's answer to `/route/` when a worker is ready; passed
 * unchanged to the worker as `auth_data`.
 */
export interface AuthData {
  /** The worker's base URL. */
  url: string;
  /** The request's place in the endpoint queue. */
  request_idx?: number;
  /** Other fields (`signature`, `reqnum`, `cost`, `endpoint`, ...). */
  [key: string]: unknown;
}

/** Longest wait for one `/route/` answer, as in Vast's Python client. */
const ROUTE_CALL_TIMEOUT_MS = 10_000;

/** Statuses worth re-routing and retrying. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

type RouteResult =
  | { kind: "ready"; auth: AuthData }
  | { kind: "waiting"; requestIdx: number | undefined; status: string }
  | { kind: "retry"; error: EdgeworkerError; retryAfterMs?: number };

/** JSON request headers, with the API key as Bearer when there is one. */
export function jsonHeaders(apiKey: string): Headers {
  const headers = new Headers({ "content-type": "application/json" });
  if (apiKey) headers.set("authorization", `Bearer ${apiKey}`);
  return headers;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

async function routeOnce(
  cfg: ResolvedConfig,
  call: Call,
  cost: number,
  requestIdx: number,
): Promise<RouteResult> {
  const perCall = new AbortController();
  const timer = setTimeout(
    () =>
      perCall.abort(
        new DOMException(
          `no answer within ${ROUTE_CALL_TIMEOUT_MS / 1000} s`,
          "TimeoutError",
        ),
      ),
    ROUTE_CALL_TIMEOUT_MS,
  );
  const where = `${cfg.routeUrl}/route/ for endpoint "${cfg.endpoint}"`;
  let status: number;
  let text: string;
  let retryAfter: string | null;
  try {
    const res = await cfg.fetch(`${cfg.routeUrl}/route/`, {
      method: "POST",
      headers: jsonHeaders(cfg.apiKey),
      body: JSON.stringify({
        endpoint: cfg.endpoint,
        api_key: cfg.apiKey,
        cost,
        request_idx: requestIdx,
      }),
      signal: AbortSignal.any([call.signal, perCall.signal]),
    });
    status = res.status;
    retryAfter = res.headers.get("retry-after");
    text = await res.text();
  } catch (err) {
    if (call.signal.aborted) throw err;
    const error = new EdgeworkerError(
      `Could not reach ${where}: ${describe(err)}`,
      {
        code: "network",
        cause: err,
      },
    );
    return { kind: "retry", error };
  } finally {
    clearTimeout(timer);
  }
  const failure = (message: string): EdgeworkerError =>
    new EdgeworkerError(message, { code: "route", status, body: text });
  if (status < 200 || status > 299) {
    const error = failure(
      `${where} failed: HTTP ${status} ${snippet(text)}`.trim(),
    );
    if (!isRetryableStatus(status)) throw error;
    return { kind: "retry", error, retryAfterMs: parseRetryAfter(retryAfter) };
  }
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    answer = undefined;
  }
  if (!isRecord(answer)) {
    return {
      kind: "retry",
      error: failure(`${where} answered with non-JSON: ${snippet(text)}`),
    };
  }
  const idx = typeof answer.request_idx === "number"
    ? answer.request_idx
    : undefined;
  if (typeof answer.url === "string" && answer.url !== "") {
    return { kind: "ready", auth: answer as AuthData };
  }
  const waiting = answer.status;
  const note = waiting === undefined ? "" : snippet(
    typeof waiting === "string" ? waiting : JSON.stringify(waiting),
    200,
  );
  return { kind: "waiting", requestIdx: idx, status: note };
}

/** Routing state kept across re-routes of one request. */
export interface RouteState {
  /** 0 until the autoscaler assigns a place in the queue. */
  requestIdx: number;
}

/**
 * Calls `/route/` until a worker is ready, keeping the `request_idx` the
 * autoscaler hands out so the request keeps its place in the queue.
 */
export async function acquireWorker(
  cfg: ResolvedConfig,
  call: Call,
  cost: number,
  state: RouteState,
): Promise<AuthData> {
  if (cfg.workerUrl) {
    call.phase = "worker";
    return {
      cost,
      endpoint: cfg.endpoint,
      reqnum: 1,
      request_idx: 1,
      signature: "",
      url: cfg.workerUrl,
    };
  }
  let polls = 0;
  while (true) {
    call.phase = "route";
    const result = await routeOnce(cfg, call, cost, state.requestIdx);
    if (result.kind === "ready") {
      const idx = result.auth.request_idx;
      if (typeof idx === "number") state.requestIdx = idx;
      return result.auth;
    }
    if (result.kind === "waiting") {
      if (result.requestIdx !== undefined) state.requestIdx = result.requestIdx;
      call.routeStatus = result.status;
      await call.sleep(
        jitter(cfg.backoffInitialMs, cfg.routePollMaxMs, polls++),
      );
      continue;
    }
    const delay = call.nextRetry(result.retryAfterMs);
    if (delay === undefined) throw result.error;
    await call.sleep(delay);
  }
}

/** Joins a worker base URL and a route path. */
export function joinUrl(base: string, route: string): string {
  return `${base.replace(/\/+$/, "")}${
    route.startsWith("/") ? route : `/${route}`
  }`;
}

/** A worker response together with the auth_data it was sent with. */
export interface Delivered {
  response: Response;
  auth: AuthData;
}

/**
 * Posts `{auth_data, payload, session_id}` to the worker chosen by `target`,
 * retrying 408/429/5xx answers and connection errors (asking `target` again
 * each time) within the call's retry budget and deadline. Other answers are
 * returned at once, body unread. When the budget runs out, the last HTTP
 * answer is returned, or the last connection error thrown.
 */
export async function deliver(
  cfg: ResolvedConfig,
  call: Call,
  route: string,
  payload: unknown,
  sessionId: string | null,
  target: () => Promise<AuthData>,
): Promise<Delivered> {
  while (true) {
    const auth = await target();
    call.phase = "worker";
    call.workerUrl = auth.url;
    let response: Response;
    try {
      response = await cfg.fetch(joinUrl(auth.url, route), {
        method: "POST",
        headers: jsonHeaders(cfg.apiKey),
        body: JSON.stringify({
          auth_data: auth,
          payload,
          session_id: sessionId,
        }),
        signal: call.signal,
      });
    } catch (err) {
      if (call.signal.aborted) throw err;
      const error = new EdgeworkerError(
        `Could not reach worker ${auth.url} (endpoint "${cfg.endpoint}") after ${
          call.retries + 1
        } attempt(s): ${describe(err)}`,
        { code: "network", cause: err },
      );
      const delay = call.nextRetry();
      if (delay === undefined) throw error;
      await call.sleep(delay);
      continue;
    }
    if (!isRetryableStatus(response.status)) return { response, auth };
    const delay = call.nextRetry(
      parseRetryAfter(response.headers.get("retry-after")),
    );
    if (delay === undefined) return { response, auth };
    await response.body?.cancel();
    await call.sleep(delay);
  }
}

/**
 * Reads a worker response as JSON; throws an {@linkcode EdgeworkerError}
 * (`http` with the status and body text, or `invalid_response`) otherwise.
 */
export async function readJson(
  response: Response,
  what: string,
): Promise<unknown> {
  const text = await response.text();
  if (!response.ok) {
    throw new EdgeworkerError(
      `${what} failed: HTTP ${response.status} ${snippet(text)}`.trim(),
      { code: "http", status: response.status, body: text },
    );
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new EdgeworkerError(
      `${what} returned a non-JSON body: ${snippet(text)}`,
      {
        code: "invalid_response",
        status: response.status,
        body: text,
        cause: err,
      },
    );
  }
}

/** Throws the body of a non-2xx streaming response as an error. */
async function assertStreamOk(
  response: Response,
  what: string,
): Promise<void> {
  if (response.ok) return;
  const text = await response.text();
  throw new EdgeworkerError(
    `${what} failed: HTTP ${response.status} ${snippet(text)}`.trim(),
    {
      code: "http",
      status: response.status,
      body: text,
    },
  );
}

/**
 * The events of a streamed answer (SSE or JSON Lines), parsed as they
 * arrive.
 *
 * @throws {EdgeworkerError} `http` when the answer is not 2xx.
 */
export async function* eventsOf(
  response: Response,
  what: string,
): AsyncGenerator<unknown, void, undefined> {
  await assertStreamOk(response, what);
  if (response.body) yield* parseEventStream(response.body);
}
