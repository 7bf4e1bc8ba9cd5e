/**
 * Errors as answers: a route throws {@linkcode fail} with the status and
 * JSON body a client should see, and the app turns every thrown error into
 * its answer once, in {@linkcode errorAnswer}.
 *
 * @module
 */
import type { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** A JSON error answer. */
export function jsonError(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/**
 * Stops the request with `status` and a JSON `body` (naming what is wrong).
 *
 * @example
 * ```ts
 * import { fail } from "./errors.ts";
 * const checkAge = (age: unknown) => {
 *   if (typeof age !== "number") fail(422, { age: "expected a number" });
 * };
 * ```
 */
export function fail(
  status: number,
  body: unknown,
  headers?: Record<string, string>,
): never {
  failWith(jsonError(status, body, headers));
}

/** Stops the request with a ready answer (a refusal built elsewhere). */
export function failWith(res: Response): never {
  throw new HTTPException(res.status as ContentfulStatusCode, { res });
}

/** The answer to an error a route threw: its own, or 500 naming it. */
export function errorAnswer(err: Error): Response {
  if (err instanceof HTTPException) return err.getResponse();
  return jsonError(500, { error: `internal error: ${err.message}` });
}

/** 405 with `Allow` on every registered path, from the routes themselves. */
export function answerWrongMethods(app: Hono): void {
  const allowed = new Map<string, Set<string>>();
  for (const { path, method } of app.routes) {
    if (method === "ALL") continue;
    if (!allowed.has(path)) allowed.set(path, new Set());
    allowed.get(path)!.add(method);
  }
  for (const [path, methods] of allowed) {
    const allow = [...methods].join(", ");
    app.all(path, (c) =>
      c.json(
        { error: `method ${c.req.method} not allowed`, allow },
        405,
        { Allow: allow },
      ));
  }
}
