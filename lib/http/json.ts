/**
 * Reading a request's JSON body within limits, for every route.
 *
 * @module
 */
import { jsonDepth, MAX_JSON_DEPTH } from "./envelope.ts";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { jsonError } from "./errors.ts";

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

/** {@linkcode readJsonBody} for a route: a refusal is thrown as its answer. */
export async function readJson(
  req: Request,
  limit: number | undefined,
): Promise<{ body: unknown; text: string }> {
  const read = await readJsonBody(req, limit);
  if (read instanceof Response) {
    throw new HTTPException(read.status as ContentfulStatusCode, { res: read });
  }
  return read;
}
