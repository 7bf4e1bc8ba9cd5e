/**
 * Resumable streams over HTTP: the hook that makes a handler's streamed
 * answer resumable (its `resumeSeconds`), and `POST /resume/<id>`, where a
 * client that lost the connection gets the rest of the answer.
 *
 * The resume request's body is `{"auth_data": {...}, "offset": N}`:
 * `auth_data` exactly as the original request sent it (the stream is
 * bound to it: another request's `auth_data`, even one signed for the same
 * worker, is refused with 401), `offset` the number of body bytes already
 * received. Instead of `offset`, an SSE client may send the `Last-Event-ID`
 * header: the worker resumes after that event.
 *
 * @module
 */
import type { Context } from "hono";
import {
  RESUME_OFFSET_HEADER,
  type ResumeRegistry,
} from "../traffic/resumable.ts";
import type { RequestTicket } from "../traffic/ticket.ts";
import { fail } from "./errors.ts";
import { readJson } from "./json.ts";
import type { ResumeHook } from "./proxy.ts";

/** A resume body holds `auth_data` and an offset: a few KiB at most. */
const MAX_RESUME_BODY_BYTES = 64 * 1024;

/** What the resume route needs. */
export interface ResumeDeps {
  /** Every resumable stream of the worker. */
  resumable: ResumeRegistry;
}

/**
 * The hook that makes `ticket`'s streamed answer resumable for `seconds`,
 * or undefined when the handler has not opted in (`seconds` unset).
 */
export function resumeHook(
  registry: ResumeRegistry,
  seconds: number | null | undefined,
  ticket: RequestTicket,
  authData: unknown,
): ResumeHook | undefined {
  if (!seconds) return undefined;
  return (body, status, headers) => {
    const stream = registry.start({
      ticket,
      body,
      status,
      headers,
      authData,
      seconds,
    });
    return new Response(stream, { status, headers });
  };
}

/** The Hono handler of `POST /resume/:id`. */
export function resumeRoute(
  deps: ResumeDeps,
): (c: Context) => Promise<Response> {
  return async (c) => {
    const req = c.req.raw;
    // Read before anything awaits: a closed request throws on access.
    const lastEventId = req.headers.get("last-event-id");
    const signal = req.signal;
    const id = c.req.param("id") ?? "";
    const { body } = await readJson(req, MAX_RESUME_BODY_BYTES);
    const { auth, offset } = resumeBody(body);
    const stream = deps.resumable.get(id);
    if (!stream) {
      fail(404, {
        error:
          `no resumable stream "${id}": unknown, expired, or its resume time is over`,
      });
    }
    if (!stream.authorize(auth)) {
      fail(401, {
        error: "auth_data differs from the one the stream's request carried",
      });
    }
    const point = stream.resumePoint(offset, lastEventId);
    if (!point.ok) fail(point.status, { error: point.error });
    const headers = new Headers(stream.headers);
    headers.set(RESUME_OFFSET_HEADER, String(point.offset));
    return new Response(
      deps.resumable.resume(stream, point.offset, signal),
      { status: stream.status, headers },
    );
  };
}

function resumeBody(body: unknown): { auth: unknown; offset?: number } {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    fail(422, { error: "expected a JSON object with auth_data" });
  }
  const { auth_data: auth, offset } = body as Record<string, unknown>;
  if (auth === undefined) fail(422, { auth_data: "field missing" });
  if (typeof auth !== "object" || auth === null || Array.isArray(auth)) {
    fail(422, { auth_data: "expected an object" });
  }
  if (offset === undefined || offset === null) return { auth };
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) {
    fail(422, { offset: "expected an integer >= 0 (bytes already received)" });
  }
  return { auth, offset: offset as number };
}
