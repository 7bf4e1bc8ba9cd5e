/**
 * `/session/*` routes, compatible with the Python SDK client's session
 * flow. Unlike the Python worker, `/session/create` checks the signature.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { jsonError, readJsonBody } from "./json.ts";
import type { Verifier } from "../auth/signatures.ts";
import type { Lifecycle } from "../model/lifecycle.ts";
import type { Ledger } from "../traffic/ledger.ts";
import { parseEnvelope } from "./envelope.ts";
import {
  jsonEqual,
  MAX_ON_CLOSE_PAYLOAD_BYTES,
  onCloseRouteProblem,
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

async function readJson(
  req: Request,
  limit: number | undefined,
): Promise<unknown | Response> {
  const read = await readJsonBody(req, limit);
  return read instanceof Response ? read : read.body;
}

/** What the session routes need (the handler routes need more). */
export interface SessionDeps {
  sessions: SessionStore;
  verifier: Verifier;
  ledger: Ledger;
  lifecycle: Lifecycle;
  /** Body limit in bytes; none when undefined (base64 media). */
  maxBodyBytes?: number;
}

/** The routes that act on one existing session, by id and auth. */
function lookup(
  deps: SessionDeps,
  body: unknown,
):
  | Response
  | {
    id: string;
    auth: unknown;
    session: ReturnType<SessionDeps["sessions"]["get"]>;
  } {
  const data = (body ?? {}) as Record<string, unknown>;
  const id = data.session_id;
  if (typeof id !== "string" || id === "") {
    return jsonError(422, { session_id: "field missing" });
  }
  return { id, auth: data.session_auth, session: deps.sessions.get(id) };
}

/** Builds the session routes; `/session/end` alone is also served on the plain-HTTP port. */
export function sessionRoutes(deps: SessionDeps): Hono {
  const app = new Hono();

  app.post("/session/create", async (c) => {
    const read = await readJsonBody(c.req.raw, deps.maxBodyBytes);
    if (read instanceof Response) return read;
    const { body, text } = read;
    const parsed = parseEnvelope(body, text);
    if (!parsed.ok) return jsonError(422, parsed.errors);
    const options = SessionOptionsSchema.safeParse(parsed.envelope.payload);
    if (!options.success) {
      const errors: Record<string, string> = {};
      for (const i of options.error.issues) {
        errors[i.path.join(".")] = i.message;
      }
      return jsonError(422, { payload: errors });
    }
    const auth = parsed.envelope.auth_data;
    const info = {
      requestIdx: parsed.numbers.request_idx,
      reqnum: parsed.numbers.reqnum,
      route: "/session/create",
      workload: Number(auth.cost) || 0,
    };
    const verdict = await deps.verifier.verify(auth, text);
    if (!verdict.ok) {
      deps.ledger.reject(info, "signature", 401);
      return jsonError(401, {
        error: "invalid signature",
        reason: verdict.reason,
      });
    }
    if (deps.lifecycle.state === "draining") {
      deps.ledger.reject(info, "draining", 503);
      return jsonError(503, { error: "worker is shutting down" });
    }
    const session = deps.sessions.create({
      authData: body && typeof body === "object"
        ? (body as { auth_data: Record<string, unknown> }).auth_data
        : auth,
      lifetime: options.data.lifetime,
      onCloseRoute: options.data.on_close_route || null,
      onClosePayload: options.data.on_close_payload,
    });
    if (!session) {
      deps.ledger.reject(info, "sessions", 429);
      return jsonError(429, { error: "too many sessions" });
    }
    return c.json(
      { session_id: session.id, expiration: session.expiration },
      201,
    );
  });

  app.post("/session/get", async (c) => {
    const body = await readJson(c.req.raw, deps.maxBodyBytes);
    if (body instanceof Response) return body;
    const found = lookup(deps, body);
    if (found instanceof Response) return found;
    const s = found.session;
    if (!s) return jsonError(400, { error: "session does not exist" });
    if (!jsonEqual(s.authData, found.auth)) {
      return jsonError(401, { error: "session_auth is not valid" });
    }
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
    const body = await readJson(c.req.raw, deps.maxBodyBytes);
    if (body instanceof Response) return body;
    const found = lookup(deps, body);
    if (found instanceof Response) return found;
    if (!found.session) return c.json({ ok: false });
    if (!jsonEqual(found.session.authData, found.auth)) {
      return jsonError(401, { error: "session_auth is not valid" });
    }
    return c.json({ ok: true });
  });

  app.post("/session/end", (c) => endSession(c.req.raw, deps));
  return app;
}

/** `POST /session/end`, shared by both ports. */
export async function endSession(
  req: Request,
  deps: Pick<SessionDeps, "sessions" | "maxBodyBytes">,
): Promise<Response> {
  const body = await readJson(req, deps.maxBodyBytes);
  if (body instanceof Response) return body;
  const data = (body ?? {}) as Record<string, unknown>;
  const id = data.session_id;
  if (typeof id !== "string" || id === "") {
    return jsonError(422, { session_id: "field missing" });
  }
  const s = deps.sessions.get(id);
  if (!s) {
    return deps.sessions.wasClosed(id)
      ? jsonError(410, { error: "session already closed" })
      : jsonError(400, { error: `session with id ${id} not found` });
  }
  if (!jsonEqual(s.authData, data.session_auth)) {
    return jsonError(401, { error: "session_auth is not valid" });
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
  app.notFound((c) => c.json({ error: `no route ${c.req.path}` }, 404));
  return app;
}
