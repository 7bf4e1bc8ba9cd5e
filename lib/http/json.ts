/**
 * Small HTTP helpers shared by the routes.
 *
 * @module
 */
import { jsonDepth, MAX_JSON_DEPTH } from "./envelope.ts";

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

/** The body as text; undefined when it is over `limit` bytes. */
async function readText(
  req: Request,
  limit: number | undefined,
): Promise<string | undefined> {
  if (limit === undefined || !req.body) return await req.text();
  if (Number(req.headers.get("content-length") ?? NaN) > limit) return;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req.body) {
    size += chunk.byteLength;
    if (size > limit) return;
    chunks.push(chunk);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

/**
 * Reads a JSON body: 413 over `limit` bytes, 422 for nesting deeper than
 * {@linkcode MAX_JSON_DEPTH} or text that is not JSON. The text is kept:
 * legacy signatures need the numbers as written.
 */
export async function readJsonBody(
  req: Request,
  limit: number | undefined,
): Promise<{ body: unknown; text: string } | Response> {
  const text = await readText(req, limit);
  if (text === undefined) {
    return jsonError(413, {
      error: `request body larger than ${limit} bytes`,
      limit,
    });
  }
  if (jsonDepth(text) > MAX_JSON_DEPTH) {
    return jsonError(422, {
      error: `JSON nested deeper than ${MAX_JSON_DEPTH} levels`,
    });
  }
  try {
    return { body: JSON.parse(text), text };
  } catch {
    return jsonError(422, { error: "invalid JSON" });
  }
}
