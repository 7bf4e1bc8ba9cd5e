/**
 * One handler route, the worker's request path: admit (the checks, in the
 * Python worker's order) → enter (a ticket: ledger record, queue slot,
 * session place, timeouts) → call the model (or the handler's
 * `remoteFunction`, in the worker) → relay the answer.
 *
 * @module
 */
import type { Context } from "hono";
import type { Payload } from "../config/schemas.ts";
import { checkBudget } from "../traffic/admission.ts";
import type { CompiledHandler } from "../traffic/handlers.ts";
import type { RequestInfo } from "../traffic/ledger.ts";
import type { OpenSession } from "../traffic/sessions.ts";
import type { QueuePlan } from "../traffic/admission.ts";
import type { Admission } from "../traffic/ticket.ts";
import type { SessionDeps } from "./session_routes.ts";
import type { Span } from "../auth/json_members.ts";
import { parseEnvelope } from "./envelope.ts";
import { fail } from "./errors.ts";
import { readJson } from "./json.ts";
import { callLocal } from "./local_call.ts";
import type { ModelClient } from "../model/model_client.ts";
import {
  abortedAnswer,
  answerOf,
  callModel,
  relay,
  responseOf,
} from "./proxy.ts";
import { type ResumeDeps, resumeHook } from "./resume_route.ts";
import { errorText } from "../std/errors.ts";

/** What a handler route needs, beyond the session routes' needs. */
export interface HandlerRouteDeps extends SessionDeps, ResumeDeps {
  queues: QueuePlan;
  /** Issues the ticket of every admitted request. */
  admission: Admission;
  /** Throughput for the queue budget (live estimate or benchmark). */
  throughput: () => number | undefined;
  /** Pool of connections to the model server. */
  modelClient: ModelClient;
}

/** A request that passed every check and may be forwarded. */
interface Admitted {
  info: RequestInfo;
  payload: Payload;
  /** The JSON text the model server gets. */
  body: string;
  session: OpenSession | undefined;
  /** `auth_data` as sent (a resumed stream must present it again). */
  auth: unknown;
}

/** A handler route without Hono: the request and what Deno says of it. */
export type HandlerFetch = (
  req: Request,
  info: Deno.ServeHandlerInfo | undefined,
) => Promise<Response>;

/** The Hono handler of `handler`'s route. */
export function handlerRoute(
  handler: CompiledHandler,
  deps: HandlerRouteDeps,
): (c: Context) => Promise<Response> {
  const route = handlerFetch(handler, deps);
  return (c) => route(c.req.raw, c.env as Deno.ServeHandlerInfo | undefined);
}

/** `handler`'s route as a plain function (the app's fast path calls it). */
export function handlerFetch(
  handler: CompiledHandler,
  deps: HandlerRouteDeps,
): HandlerFetch {
  return async (req, info) => {
    // The worker's own time starts here (see lib/traffic/ticket.ts).
    const arrivedAt = performance.now();
    // Read before anything awaits: a closed request throws on access.
    const accept = req.headers.get("accept");
    const remote = info?.remoteAddr;
    const admitted = await admit(req, handler, deps);
    const ticket = deps.admission.enter(
      admitted.info,
      {
        queue: deps.queues.queueOf(handler.route),
        limits: handler.limits,
        ...(admitted.session ? { session: admitted.session.inFlight } : {}),
      },
      req.signal,
      remote,
      arrivedAt,
    );
    if (!(await ticket.queue())) {
      return abortedAnswer(ticket, ticket.record.httpStatus);
    }
    ticket.sent();
    const call = handler.remoteFunction
      ? await callLocal(handler.remoteFunction, admitted.payload, {
        route: handler.route,
        request: req,
        signal: ticket.signal,
      })
      : await callModel(handler.upstreamUrl, {
        body: admitted.body,
        accept,
        signal: ticket.signal,
        client: deps.modelClient,
      });
    if (!call.ok) {
      if (call.aborted) {
        return abortedAnswer(ticket, ticket.endAborted("before the answer"));
      }
      ticket.end("error", call.status, call.detail);
      fail(call.status, { error: call.detail });
    }
    let response = call.response;
    ticket.modelAnswered(response.status);
    if (handler.responseGenerator) {
      try {
        response = answerOf(
          await handler.responseGenerator(responseOf(response), {
            payload: admitted.payload,
            route: handler.route,
            request: req,
          }),
        );
      } catch (e) {
        const why = `response generator failed: ${errorText(e)}`;
        ticket.cancel(why);
        ticket.end("error", 500, why);
        fail(500, { error: why });
      }
    }
    const seconds = handler.config.resumeSeconds;
    const resume = resumeHook(deps.resumable, seconds, ticket, admitted.auth);
    return await relay(response, ticket, {
      failureOf: handler.failureOf,
      resume,
    });
  };
}

/**
 * The checks, in the Python worker's order: JSON, envelope (422), workload,
 * session (410), draining (503), signature (401), queue budget (429). Each
 * refusal after the workload is known is recorded in the ledger.
 */
async function admit(
  req: Request,
  handler: CompiledHandler,
  deps: HandlerRouteDeps,
): Promise<Admitted> {
  const read = await readJson(req, deps.maxBodyBytes);
  const parsed = parseEnvelope(read.body, read.text);
  if (!parsed.ok) fail(422, parsed.errors);
  const { auth_data: auth, session_id: sessionId } = parsed.envelope;

  let payload: Payload;
  try {
    payload = handler.parse(parsed.envelope.payload);
  } catch (e) {
    fail(422, { payload: `request parser failed: ${errorText(e)}` });
  }
  const info: RequestInfo = {
    requestIdx: parsed.numbers.request_idx,
    reqnum: parsed.numbers.reqnum,
    route: handler.route,
    workload: handler.workload(payload),
  };

  let session: OpenSession | undefined;
  let access;
  if (sessionId) {
    access = deps.sessions.authorize(sessionId, auth);
    if (!access.ok && access.missing) fail(410, { error: "invalid session" });
    info.sessionId = sessionId;
  }

  if (deps.lifecycle.state === "draining") {
    deps.ledger.reject(info, "draining", 503);
    fail(503, { error: "worker is shutting down" }, {
      "retry-after": String(deps.drainRetryAfterSeconds),
    });
  }

  // A session's requests carry the auth_data its creation verified: compare
  // instead of verifying again (the legacy replay window would refuse it).
  const verdict = access
    ? access.ok
      ? { ok: true as const }
      : { ok: false as const, reason: "auth_data differs from the session's" }
    : await deps.verifier.verify(auth, read.text);
  if (!verdict.ok) {
    deps.ledger.reject(info, "signature", 401);
    fail(401, { error: "invalid signature", reason: verdict.reason });
  }

  if (access?.ok) {
    // Only an accepted request keeps its session alive; a session's cost
    // already stands for its requests, so no budget check.
    session = access.session;
    deps.sessions.touch(session);
  } else checkQueueBudget(info, handler, deps);
  return {
    info,
    payload,
    body: modelBody(handler, payload, read.text, parsed.payloadSpan),
    session,
    auth: authAsSent(read.body),
  };
}

/** 429 (recorded) when the estimated queue wait is over the handler's budget. */
function checkQueueBudget(
  info: RequestInfo,
  handler: CompiledHandler,
  deps: HandlerRouteDeps,
): void {
  const budget = checkBudget(deps.ledger.queueWorkload, {
    throughput: deps.throughput(),
    maxQueueTime: handler.maxQueueTime,
  });
  if (budget.admit) return;
  deps.ledger.reject(info, "budget", 429);
  fail(429, {
    error: "queue is full",
    estimated_wait_seconds: Number(budget.waitSeconds.toFixed(3)),
    max_queue_time: handler.maxQueueTime,
  }, { "retry-after": String(budget.retryAfterSeconds) });
}

/** The body's `auth_data` as sent (the envelope check passed). */
function authAsSent(body: unknown): unknown {
  return (body as { auth_data: unknown }).auth_data;
}

/**
 * What the model server receives: the payload's own text when the handler
 * does not change it (no parse-and-stringify round trip for base64 media),
 * else the parser's result as JSON.
 */
function modelBody(
  handler: CompiledHandler,
  payload: Payload,
  text: string,
  span: Span | undefined,
): string {
  // A remote function takes the payload itself.
  if (handler.remoteFunction) return "";
  if (handler.forwardsAsSent && span) return text.slice(span.start, span.end);
  return JSON.stringify(payload);
}
