/**
 * `/session/*` routes, compatible with the Python SDK client's session
 * flow. Unlike the Python worker, `/session/create` checks the signature.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { readJson } from "./json.ts";
import { answerWrongMethods, errorAnswer, fail } from "./errors.ts";
import type { Verifier } from "../auth/signatures.ts";
import type { Lifecycle } from "../model/lifecycle.ts";
import type { Ledger } from "../traffic/ledger.ts";
import { parseEnvelope } from "./envelope.ts";
import {
  MAX_ON_CLOSE_PAYLOAD_BYTES,
  onCloseRouteProblem,
  type SessionAccess,
  type SessionStore,
} from "../traffic/sessions.ts";

const encoder = new TextEncoder();

const SessionOptionsSchema = z.object({
  lifetime: z.number().positive().default(60),
  // A path on the model server only; "" means none, as in Python.
  on_close_route: z.string().nullable().default(null).superRefine(
    (route, ctx) => {
      const problem = route ? onCloseRouteProblem(route) : undefined;
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    },
  ),
  on_close_payload: z.unknown().default(null).superRefine((payload, ctx) => {
    const bytes = encoder.encode(JSON.stringify(payload ?? null)).length;
    if (bytes > MAX_ON_CLOSE_PAYLOAD_BYTES) {
      ctx.addIssue({
        code: "custom",
        message:
          `${bytes} bytes of JSON; at most ${MAX_ON_CLOSE_PAYLOAD_BYTES} accepted`,
      });
    }
  }),
});

/** What the session routes need (the handler routes need more). */
export interface SessionDeps {
  sessions: SessionStore;
  verifier: Verifier;
  ledger: Ledger;
  lifecycle: Lifecycle;
  /** Body limit in bytes; undefined: 256 MiB (see `readJsonBody`). */
  maxBodyBytes?: number;
  /** Seconds a client should wait before retrying during shutdown. */
  drainRetryAfterSeconds: number;
}

/** `session_id` and `session_auth` of a body, checked against the store. */
async function sessionOf(
  req: Request,
  deps: Pick<SessionDeps, "sessions" | "maxBodyBytes">,
): Promise<{ id: string; access: SessionAccess }> {
  const { body } = await readJson(req, deps.maxBodyBytes);
  const data = (body ?? {}) as Record<string, unknown>;
  const id = data.session_id;
  if (typeof id !== "string" || id === "") {
    // Python's words (the SDK client shows `error`), and ours beside them.
    fail(422, { error: "missing session_id", session_id: "field missing" });
  }
  return { id, access: deps.sessions.authorize(id, data.session_auth) };
}

const NOT_VALID = { error: "session_auth is not valid" };

/** Builds the session routes; `/session/end` alone is also served on the plain-HTTP port. */
export function sessionRoutes(deps: SessionDeps): Hono {
  const app = new Hono();

  /**
   * The handler routes' order: JSON and options (422), draining (503),
   * signature (401), then the session limit (429).
   */
  app.post("/session/create", async (c) => {
    const { body, text } = await readJson(c.req.raw, deps.maxBodyBytes);
    const parsed = parseEnvelope(body, text);
    if (!parsed.ok) fail(422, parsed.errors);
    const options = SessionOptionsSchema.safeParse(parsed.envelope.payload);
    if (!options.success) {
      const errors: Record<string, string> = {};
      for (const i of options.error.issues) {
        errors[i.path.join(".")] = i.message;
      }
      fail(422, { payload: errors });
    }
    const auth = parsed.envelope.auth_data;
    const info = {
      requestIdx: parsed.numbers.request_idx,
      reqnum: parsed.numbers.reqnum,
      route: "/session/create",
      workload: Number(auth.cost) || 0,
    };
    if (deps.lifecycle.state === "draining") {
      deps.ledger.reject(info, "draining", 503);
      fail(503, { error: "worker is shutting down" }, {
        "retry-after": String(deps.drainRetryAfterSeconds),
      });
    }
    const verdict = await deps.verifier.verify(auth, text);
    if (!verdict.ok) {
      deps.ledger.reject(info, "signature", 401);
      fail(401, { error: "invalid signature", reason: verdict.reason });
    }
    const session = deps.sessions.create({
      info,
      // As sent: session requests must carry exactly this auth_data.
      authData: (body as { auth_data: Record<string, unknown> }).auth_data,
      lifetime: options.data.lifetime,
      onCloseRoute: options.data.on_close_route || null,
      onClosePayload: options.data.on_close_payload,
    });
    if (!session) {
      deps.ledger.reject(info, "sessions", 429);
      fail(429, { error: "too many sessions" });
    }
    return c.json(
      { session_id: session.id, expiration: session.expiration },
      201,
    );
  });

  app.post("/session/get", async (c) => {
    const { access } = await sessionOf(c.req.raw, deps);
    if (!access.ok) {
      fail(
        access.missing ? 400 : 401,
        access.missing ? { error: "session does not exist" } : NOT_VALID,
      );
    }
    const s = access.session;
    return c.json({
      session_id: s.id,
      auth_data: s.authData,
      lifetime: s.lifetime,
      expiration: s.expiration,
      created_at: s.createdAt,
      on_close_route: s.onCloseRoute,
      on_close_payload: s.onClosePayload,
    });
  });

  app.post("/session/health", async (c) => {
    const { access } = await sessionOf(c.req.raw, deps);
    if (!access.ok && !access.missing) fail(401, NOT_VALID);
    return c.json({ ok: access.ok });
  });

  app.post("/session/end", (c) => endSession(c.req.raw, deps));
  return app;
}

/** `POST /session/end`, shared by both ports. */
export async function endSession(
  req: Request,
  deps: Pick<SessionDeps, "sessions" | "maxBodyBytes">,
): Promise<Response> {
  const { id, access } = await sessionOf(req, deps);
  if (!access.ok) {
    if (!access.missing) fail(401, NOT_VALID);
    fail(
      access.closed ? 410 : 400,
      access.closed
        ? { error: "session already closed" }
        : { error: `session with id ${id} not found` },
    );
  }
  deps.sessions.close(id, "ended by client");
  return Response.json({ ended: true, removed_session: id });
}

/** The plain-HTTP app of `WORKER_HTTP_PORT`: only `/session/end`. */
export function sessionEndApp(
  deps: Pick<SessionDeps, "sessions" | "maxBodyBytes">,
): Hono {
  const app = new Hono();
  app.post("/session/end", (c) => endSession(c.req.raw, deps));
  answerWrongMethods(app);
  app.notFound((c) => c.json({ error: `no route ${c.req.path}` }, 404));
  app.onError(errorAnswer);
  return app;
}
