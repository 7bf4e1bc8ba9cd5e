/**
 * A scripted model server for integration tests: each route shows one
 * behaviour (echo, paced stream, slow answer, mid-stream reset, a stream
 * that stalls, an answer that never comes, browser-facing headers) and
 * records what the worker sent it.
 */

/** What the scripted server saw. */
export interface UpstreamHandle {
  url: string;
  /** Bodies received, in arrival order. */
  bodies: Record<string, unknown>[];
  /** The same bodies as the bytes received. */
  texts: string[];
  /** Request headers received, in arrival order. */
  headers: Headers[];
  /** Requests whose client (the worker) went away before the end. */
  aborted: number;
  /** Requests being served now, and the most at once. */
  active: number;
  maxActive: number;
  /** Unix ms at which each stream chunk was produced. */
  chunkTimes: number[];
  close(): Promise<void>;
}

const enc = new TextEncoder();

/** Starts the scripted server on 127.0.0.1 with a free port. */
export function startUpstream(): UpstreamHandle {
  const handle: UpstreamHandle = {
    url: "",
    bodies: [],
    texts: [],
    headers: [],
    aborted: 0,
    active: 0,
    maxActive: 0,
    chunkTimes: [],
    close: () => server.shutdown(),
  };
  const enter = () => {
    handle.active++;
    handle.maxActive = Math.max(handle.maxActive, handle.active);
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      if (req.method === "GET" && path === "/health") return new Response("ok");
      const text = await req.text();
      handle.texts.push(text);
      const body = JSON.parse(text) as Record<string, unknown>;
      handle.bodies.push(body);
      handle.headers.push(req.headers);
      const signal = req.signal;
      signal.addEventListener("abort", () => handle.aborted++, { once: true });
      switch (path) {
        case "/echo":
          return Response.json({ received: body }, {
            headers: { "x-model": "scripted" },
          });
        case "/hang":
          // Never answers; ends only when the worker aborts the call.
          enter();
          await new Promise((r) => signal.addEventListener("abort", r));
          handle.active--;
          return new Response(null, { status: 499 });
        case "/headers":
          return Response.json({ ok: true }, {
            headers: {
              "set-cookie": "session=stolen; Path=/",
              "access-control-allow-origin": "*",
              "strict-transport-security": "max-age=0",
              location: "http://evil.example/",
              server: "uvicorn",
              "x-request-id": "req-1",
              "x-frame-options": "DENY",
              "cache-control": "no-store",
            },
          });
        case "/status":
          return Response.json({ error: "model says no" }, {
            status: Number(body.status),
          });
        case "/slow": {
          enter();
          await new Promise((r) => setTimeout(r, Number(body.delay_ms ?? 50)));
          handle.active--;
          return Response.json({ seq: body.seq ?? null });
        }
        case "/stream":
        case "/stall":
        case "/reset": {
          const chunks = Number(body.chunks ?? 5);
          const gap = Number(body.gap_ms ?? 100);
          const reset = path === "/reset";
          // Streams two chunks, then sends nothing more.
          const stall = path === "/stall";
          let timer: ReturnType<typeof setTimeout> | undefined;
          let i = 0;
          enter();
          const stream = new ReadableStream<Uint8Array>({
            start(controller) {
              const next = () => {
                try {
                  step();
                } catch {
                  // The worker cancelled the stream between two chunks.
                  clearTimeout(timer);
                }
              };
              const step = () => {
                if (reset && i === 2) {
                  handle.active--;
                  controller.error(new Error("model crashed"));
                  return;
                }
                if (stall && i === 2) return;
                if (i === chunks) {
                  handle.active--;
                  controller.enqueue(enc.encode("data: [DONE]\n\n"));
                  controller.close();
                  return;
                }
                handle.chunkTimes.push(Date.now());
                controller.enqueue(enc.encode(`data: {"i":${i}}\n\n`));
                i++;
                timer = setTimeout(next, gap);
              };
              next();
            },
            cancel() {
              handle.active--;
              clearTimeout(timer);
            },
          });
          return new Response(stream, {
            headers: { "content-type": "text/event-stream" },
          });
        }
        default:
          return Response.json({ error: "no such route" }, { status: 404 });
      }
    },
  );
  handle.url = `http://127.0.0.1:${server.addr.port}`;
  return handle;
}
