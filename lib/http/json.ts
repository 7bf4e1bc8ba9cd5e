/**
 * Reading a request's JSON body within limits, for every route: memory
 * follows the bytes received, never the announced length.
 *
 * @module
 */
import { DEFAULT_MAX_BODY_BYTES, MAX_STRING_BYTES } from "../config/env.ts";
import {
  type BodyWait,
  connectionOf,
  noteBodyRead,
  type RequestConnection,
} from "./conn_context.ts";
import { jsonDepth, MAX_JSON_DEPTH } from "./envelope.ts";
import { failWith, jsonError } from "./errors.ts";

/**
 * Bodies announced up to this size are read with `req.text()`, Deno's fast
 * path; larger or unannounced ones chunk by chunk, because `req.text()`
 * sizes its buffer from the announced length, not from what arrived.
 */
const SMALL_BODY_BYTES = 64 * 1024;

const TOO_LARGE = Symbol("too large");
const TIMED_OUT = Symbol("timed out");
type Read = string | typeof TOO_LARGE | typeof TIMED_OUT;

/**
 * The body as text, or why not. Memory follows the bytes received: a body
 * announced over `limit` is refused before anything is read, and one that
 * grows past it while read is dropped. A body that is not whole within its
 * connection's body timeout is given up. Either way the connection is
 * closed after the answer: what is left of the body is never read.
 */
async function readText(req: Request, limit: number): Promise<Read> {
  const conn = connectionOf(req);
  noteBodyRead(req);
  const length = req.headers.get("content-length");
  const declared = length === null ? NaN : Number(length);
  if (declared > limit) {
    conn?.closeAfterResponse();
    return TOO_LARGE;
  }
  if (declared <= SMALL_BODY_BYTES) {
    const text = await within(req.text(), conn, noop);
    if (text === TIMED_OUT) conn?.closeAfterResponse();
    return text;
  }
  // Touched only here: `req.body` makes a JS stream, which `req.text()`
  // does without.
  if (!req.body) return "";
  const reader = req.body.getReader();
  const chunks = await within(readChunks(reader, limit), conn, () => {
    reader.cancel().catch(() => {}); // ends the pending read
  });
  if (chunks === TOO_LARGE || chunks === TIMED_OUT) {
    conn?.closeAfterResponse();
    return chunks;
  }
  const size = chunks.reduce((n, c) => n + c.byteLength, 0);
  if (chunks.length === 1) return new TextDecoder().decode(chunks[0]);
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  chunks.length = 0;
  return new TextDecoder().decode(all);
}

/**
 * `read`'s value, or {@linkcode TIMED_OUT} once the connection's body
 * timeout passes first (none without a connection or a timeout); `giveUp`
 * then stops the read, which may still fail later. No timer per read: the
 * connection layer's sweep fires the deadline.
 */
async function within<T>(
  read: Promise<T>,
  conn: RequestConnection | undefined,
  giveUp: () => void,
): Promise<T | typeof TIMED_OUT> {
  const ms = conn?.bodyTimeoutMs ?? 0;
  if (!conn || ms <= 0) return await read;
  const wait: BodyWait = { at: performance.now() + ms, fire: noop };
  const timedOut = new Promise<typeof TIMED_OUT>((resolve) => {
    wait.fire = () => resolve(TIMED_OUT);
  });
  conn.waitBody(wait);
  try {
    const result = await Promise.race([read, timedOut]);
    if (result === TIMED_OUT) {
      read.catch(() => {}); // a text() left pending fails when the connection closes
      giveUp();
    }
    return result;
  } finally {
    conn.endBodyWait(wait);
  }
}

function noop(): void {}

/** The chunks of a body, or {@linkcode TOO_LARGE} once past `limit` bytes. */
async function readChunks(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  limit: number,
): Promise<Uint8Array[] | typeof TOO_LARGE> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return chunks;
    size += value.byteLength;
    if (size > limit) {
      reader.cancel().catch(() => {});
      return TOO_LARGE;
    }
    chunks.push(value);
  }
}

/**
 * Reads a JSON body: 413 over `limit` bytes (default
 * {@linkcode DEFAULT_MAX_BODY_BYTES}, never over {@linkcode MAX_STRING_BYTES}),
 * 408 when it does not arrive within its connection's body timeout, 422 for
 * nesting deeper than {@linkcode MAX_JSON_DEPTH} or text that is not JSON.
 * The text is kept: legacy signatures need the numbers as written.
 */
export async function readJsonBody(
  req: Request,
  limit: number | undefined,
): Promise<{ body: unknown; text: string } | Response> {
  const max = Math.min(limit ?? DEFAULT_MAX_BODY_BYTES, MAX_STRING_BYTES);
  const text = await readText(req, max);
  if (text === TOO_LARGE) {
    return jsonError(413, {
      error: `request body larger than ${max} bytes`,
      limit: max,
    }, { connection: "close" });
  }
  if (text === TIMED_OUT) {
    const seconds = (connectionOf(req)?.bodyTimeoutMs ?? 0) / 1000;
    return jsonError(408, {
      error: `request body not received within ${seconds} s`,
      timeout_seconds: seconds,
    }, { connection: "close" });
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
    failWith(read);
  }
  return read;
}
