/**
 * The worker's HTTP surface: one POST route per handler, the local
 * endpoints (`/health`, `/ready`, `/metrics`, `/status`), sessions and the
 * update route. Every error is a JSON body naming what is wrong.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { checkBudget, type QueuePlan } from "../traffic/admission.ts";
import type { Payload } from "../config/schemas.ts";
import { parseEnvelope } from "./envelope.ts";
import type { CompiledHandler } from "../traffic/handlers.ts";
import type { RequestInfo } from "../traffic/ledger.ts";
import { jsonError, readJsonBody } from "./json.ts";
import { abortedAnswer, callModel, relay } from "./proxy.ts";
import { type SessionDeps, sessionRoutes } from "./session_routes.ts";
import { jsonEqual, type Session } from "../traffic/sessions.ts";
import type { Admission } from "../traffic/ticket.ts";
import { updateRoute } from "./update_route.ts";

/** Everything the routes need. */
export interface AppDeps extends SessionDeps {
  handlers: readonly CompiledHandler[];
  queues: QueuePlan;
  /** Issues the ticket of every admitted request. */
  admission: Admission;
  /** Throughput for the queue budget (live estimate or benchmark). */
  throughput: () => number | undefined;
  /** `MASTER_TOKEN` and the file `/pyworker/update` writes. */
  update: { token: string; file: string };
  /** Seconds a client should wait before retrying during shutdown. */
  drainRetryAfterSeconds: number;
  metricsText: () => string;
  status: () => unknown;
}

/** Builds the Hono app of a worker. */
export function createApp(deps: AppDeps): Hono {
  const app = new Hono();

  app.get(
    "/health",
    (c) => c.json({ status: "alive", state: deps.lifecycle.state }),
  );
  app.get("/ready", (c) => {
    const body = {
      state: deps.lifecycle.state,
      error_msg: deps.lifecycle.errorMsg,
    };
    return c.json(body, deps.lifecycle.ready ? 200 : 503);
  });
  app.get("/metrics", () =>
    new Response(deps.metricsText(), {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    }));
  app.get("/status", (c) => c.json(deps.status()));
  app.get("/ping", (c) => c.text("pong"));

  for (const handler of deps.handlers) {
    app.post(handler.route, (c) => handleRequest(c, handler, deps));
  }
  app.route("/", sessionRoutes(deps));
  app.route("/", updateRoute(deps.update));

  const known = new Map<string, string>([
    ["/health", "GET"],
    ["/ready", "GET"],
    ["/metrics", "GET"],
    ["/status", "GET"],
    ["/ping", "GET"],
    ["/pyworker/update", "POST"],
    ["/session/create", "POST"],
    ["/session/end", "POST"],
    ["/session/get", "POST"],
    ["/session/health", "POST"],
    ...deps.handlers.map((h) => [h.route, "POST"] as [string, string]),
  ]);
  for (const [path, allow] of known) {
    app.all(path, (c) =>
      c.json(
        { error: `method ${c.req.method} not allowed`, allow },
        405,
        { Allow: allow },
      ));
  }
  app.notFound((c) => c.json({ error: `no route ${c.req.path}` }, 404));
  app.onError((err) => {
    return jsonError(500, { error: `internal error: ${err.message}` });
  });
  return app;
}

function sessionAuth(
  session: Session,
  auth: Record<string, unknown>,
): { ok: true } | { ok: false; reason: string } {
  return jsonEqual(session.authData, auth)
    ? { ok: true }
    : { ok: false, reason: "auth_data differs from the session's" };
}

/** A request that passed every check and may be forwarded. */
interface Admitted {
  info: RequestInfo;
  payload: Payload;
  session: Session | undefined;
}

async function handleRequest(
  c: Context,
  handler: CompiledHandler,
  deps: AppDeps,
): Promise<Response> {
  const req = c.req.raw;
  // Read before anything awaits: a closed request throws on access.
  const accept = req.headers.get("accept");
  const remote = (c.env as Deno.ServeHandlerInfo | undefined)?.remoteAddr;
  const admitted = await admit(req, handler, deps);
  if (admitted instanceof Response) return admitted;
  return await forward(req.signal, accept, admitted, handler, deps, remote);
}

/**
 * The checks, in the Python worker's order: JSON, envelope (422), workload,
 * session (410), draining (503), signature (401), queue budget (429).
 */
async function admit(
  req: Request,
  handler: CompiledHandler,
  deps: AppDeps,
): Promise<Admitted | Response> {
  const read = await readJsonBody(req, deps.maxBodyBytes);
  if (read instanceof Response) return read;
  const parsed = parseEnvelope(read.body, read.text);
  if (!parsed.ok) return jsonError(422, parsed.errors);
  const { auth_data: auth, session_id: sessionId } = parsed.envelope;

  let payload: Payload;
  try {
    payload = handler.parse(parsed.envelope.payload);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return jsonError(422, { payload: `request parser failed: ${why}` });
  }
  const info: RequestInfo = {
    requestIdx: parsed.numbers.request_idx,
    reqnum: parsed.numbers.reqnum,
    route: handler.route,
    workload: handler.workload(payload),
  };

  let session: Session | undefined;
  if (sessionId) {
    session = deps.sessions.get(sessionId);
    if (!session) return jsonError(410, { error: "invalid session" });
    info.sessionId = sessionId;
  }

  if (deps.lifecycle.state === "draining") {
    deps.ledger.reject(info, "draining", 503);
    return jsonError(503, { error: "worker is shutting down" }, {
      "retry-after": String(deps.drainRetryAfterSeconds),
    });
  }

  // A session's requests carry the auth_data its creation verified: compare
  // instead of verifying again (the legacy replay window would refuse it).
  const verdict = session
    ? sessionAuth(session, auth)
    : await deps.verifier.verify(auth, read.text);
  if (!verdict.ok) {
    deps.ledger.reject(info, "signature", 401);
    return jsonError(401, {
      error: "invalid signature",
      reason: verdict.reason,
    });
  }

  if (session) {
    // Only an accepted request keeps its session alive; a session's cost
    // already stands for its requests, so no budget check.
    deps.sessions.touch(session);
    return { info, payload, session };
  }
  const budget = checkBudget(deps.ledger.queueWorkload, {
    throughput: deps.throughput(),
    maxQueueTime: handler.maxQueueTime,
  });
  if (!budget.admit) {
    deps.ledger.reject(info, "budget", 429);
    return jsonError(429, {
      error: "queue is full",
      estimated_wait_seconds: Number(budget.waitSeconds.toFixed(3)),
      max_queue_time: handler.maxQueueTime,
    }, { "retry-after": String(budget.retryAfterSeconds) });
  }
  return { info, payload, session };
}

/** Enters, queues, forwards and relays an admitted request. */
async function forward(
  clientSignal: AbortSignal,
  accept: string | null,
  { info, payload, session }: Admitted,
  handler: CompiledHandler,
  deps: AppDeps,
  remote: Deno.Addr | undefined,
): Promise<Response> {
  const ticket = deps.admission.enter(
    info,
    {
      queue: deps.queues.queueOf(handler.route),
      limits: handler.limits,
      ...(session ? { session: session.inFlight } : {}),
    },
    clientSignal,
    remote,
  );
  if (!(await ticket.queue())) {
    return abortedAnswer(ticket, ticket.record.httpStatus);
  }
  ticket.sent();
  const call = await callModel(handler.upstreamUrl, {
    body: JSON.stringify(payload),
    accept,
    signal: ticket.signal,
  });
  if (!call.ok) {
    if (call.aborted) {
      return abortedAnswer(
        ticket,
        ticket.endAborted("before the model answered"),
      );
    }
    ticket.end("error", call.status, call.detail);
    return jsonError(call.status, { error: call.detail });
  }
  let response = call.response;
  if (handler.responseGenerator) {
    try {
      response = await handler.responseGenerator(response, {
        payload,
        route: handler.route,
      });
    } catch (e) {
      const why = `response generator failed: ${
        e instanceof Error ? e.message : String(e)
      }`;
      ticket.cancel(why);
      ticket.end("error", 500, why);
      return jsonError(500, { error: why });
    }
  }
  return await relay(response, ticket);
}
