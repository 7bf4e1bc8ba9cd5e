/**
 * A handler's `remoteFunction` run in the worker, its result made into the
 * answer a model server would have given: a `Response` as it is, an async
 * iterable as JSON lines, anything else as Python's `{"result": ...}`.
 * The request path and the benchmark both call it, so both see the same
 * answer.
 *
 * @module
 */
import type {
  Payload,
  RemoteFunction,
  RemoteFunctionContext,
} from "../config/schemas.ts";

const encoder = new TextEncoder();

/**
 * Runs `fn` and gives its answer as a `Response`.
 *
 * @throws whatever `fn` throws, and a `TypeError` when its result cannot be
 * written as JSON (a cycle, a `bigint`)
 */
export async function runRemoteFunction(
  fn: RemoteFunction,
  payload: Payload,
  context: RemoteFunctionContext,
): Promise<Response> {
  const result = await fn(payload, context);
  if (result instanceof Response) return result;
  if (isAsyncIterable(result)) return jsonLines(result);
  // Python: json.dumps({"result": result}); None is null.
  const bytes = encoder.encode(
    JSON.stringify({ result: result === undefined ? null : result }),
  );
  return new Response(bytes, {
    status: 200,
    // A length makes the relay send it whole, as a model's JSON answer.
    headers: {
      "content-type": "application/json",
      "content-length": String(bytes.byteLength),
    },
  });
}

function isAsyncIterable(v: unknown): v is AsyncIterable<unknown> {
  return typeof v === "object" && v !== null &&
    typeof (v as { [Symbol.asyncIterator]?: unknown })[
        Symbol.asyncIterator
      ] === "function";
}

/** One JSON line per item, pulled as the client reads (nothing buffered). */
function jsonLines(items: AsyncIterable<unknown>): Response {
  const it = items[Symbol.asyncIterator]();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await it.next();
      if (done) controller.close();
      else {
        controller.enqueue(
          encoder.encode(`${JSON.stringify(value ?? null)}\n`),
        );
      }
    },
    async cancel() {
      await it.return?.();
    },
  }, { highWaterMark: 0 });
  return new Response(body, {
    status: 200,
    headers: { "content-type": "application/x-ndjson" },
  });
}
