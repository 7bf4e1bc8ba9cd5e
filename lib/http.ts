/**
 * Small HTTP helpers shared by the routes.
 *
 * @module
 */

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
