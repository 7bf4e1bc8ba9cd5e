/**
 * The bench's fast upstream, run as its own process:
 * `deno run -A tests/bench/upstream_server.ts <port>`.
 *
 * - `GET /health`: `ok`.
 * - `POST /echo`: the JSON body back (a model answer of a few bytes).
 * - `POST /stream`: Server-Sent Events, `{"chunks": 100, "gap_ms": 5}` by
 *   default: one `data:` line per chunk, `gap_ms` apart, then
 *   `data: [DONE]`.
 *
 * @module
 */

const port = Number(Deno.args[0] ?? 0);
const enc = new TextEncoder();
const done = enc.encode("data: [DONE]\n\n");

/** A paced SSE body; a cancelled stream stops its timer. */
function sse(chunks: number, gapMs: number): ReadableStream<Uint8Array> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let i = 0;
  return new ReadableStream({
    start(controller) {
      const step = () => {
        try {
          if (i === chunks) {
            controller.enqueue(done);
            controller.close();
            return;
          }
          controller.enqueue(enc.encode(`data: {"i":${i}}\n\n`));
          i++;
          timer = setTimeout(step, gapMs);
        } catch {
          // The reader went away between two chunks.
        }
      };
      step();
    },
    cancel() {
      clearTimeout(timer);
    },
  });
}

Deno.serve(
  { hostname: "127.0.0.1", port, onListen: () => {} },
  async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "GET") {
      return path === "/health"
        ? new Response("ok")
        : new Response("not found", { status: 404 });
    }
    const text = await req.text();
    if (path === "/stream") {
      const body = JSON.parse(text || "{}");
      return new Response(
        sse(Number(body.chunks ?? 100), Number(body.gap_ms ?? 5)),
        { headers: { "content-type": "text/event-stream" } },
      );
    }
    return new Response(text, {
      headers: { "content-type": "application/json" },
    });
  },
);
