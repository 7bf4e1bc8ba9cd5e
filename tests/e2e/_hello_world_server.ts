/**
 * A stand-in for the legacy PyWorker tutorial's model server (lib/dev has
 * none): `POST /generate` and `POST /generate_stream` taking
 * `{"prompt", "max_response_tokens"}`, `GET /health`, and the tutorial's
 * log lines (`infer server has started`, `Exception: corrupted model file`).
 */

/** Handle of the hello_world stand-in. */
export interface HelloWorldServer {
  readonly url: string;
  /** Bodies received on the generation routes, in order. */
  readonly bodies: Record<string, unknown>[];
  /** Logs the fatal line and stops listening. */
  crash(): Promise<void>;
  close(): Promise<void>;
}

const WORDS = ["hello", " from", " the", " tutorial", " model", " server"];

/** Starts the stand-in on 127.0.0.1 and logs its start line. */
export async function startHelloWorldServer(options: {
  logFile: string;
  /** Milliseconds per generated token. @default 1 */
  msPerToken?: number;
}): Promise<HelloWorldServer> {
  const ms = options.msPerToken ?? 1;
  const bodies: Record<string, unknown>[] = [];
  const log = (line: string) =>
    Deno.writeTextFile(options.logFile, line + "\n", { append: true });
  const kill = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      if (req.method === "GET" && path === "/health") {
        return Response.json({ status: "ok" });
      }
      if (
        req.method !== "POST" ||
        (path !== "/generate" && path !== "/generate_stream")
      ) {
        return Response.json({ error: "not found" }, { status: 404 });
      }
      const body = await req.json() as Record<string, unknown>;
      bodies.push(body);
      if (typeof body.prompt !== "string") {
        return Response.json({ error: "prompt required" }, { status: 422 });
      }
      const n = Number(body.max_response_tokens ?? 16);
      const tokens = Array.from({ length: n }, (_, i) => WORDS[i % 6]);
      if (path === "/generate") {
        await new Promise((r) => setTimeout(r, ms * n));
        return Response.json({ response: tokens.join(""), tokens: n });
      }
      const enc = new TextEncoder();
      let timer: ReturnType<typeof setTimeout> | undefined;
      let i = 0;
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          const next = () => {
            if (kill.signal.aborted) return controller.error(new Error("died"));
            if (i === n) {
              controller.enqueue(enc.encode("data: [DONE]\n\n"));
              return controller.close();
            }
            controller.enqueue(
              enc.encode(`data: ${JSON.stringify({ token: tokens[i++] })}\n\n`),
            );
            timer = setTimeout(next, ms);
          };
          next();
        },
        cancel: () => clearTimeout(timer),
      });
      return new Response(stream, {
        headers: { "content-type": "text/event-stream" },
      });
    },
  );
  await log("loading model weights from /models/hello.bin");
  await log("infer server has started");
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      kill.abort();
      await server.shutdown();
    })();
    return closing;
  };
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    bodies,
    crash: async () => {
      if (!closing) {
        await log("Traceback (most recent call last):");
        await log("Exception: corrupted model file");
      }
      await close();
    },
    close,
  };
}
