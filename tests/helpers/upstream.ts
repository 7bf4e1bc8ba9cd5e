/**
 * The scripted model server of the integration tests, the one test double
 * besides the stand-ins in `dev/`. Each built-in route shows one behaviour
 * (echo, paced stream, slow answer, mid-stream reset, a stream that stalls,
 * an answer that never comes, browser-facing headers, a workload served at a
 * set rate); `GET /health` answers as told (any status, or never); a test's
 * own `script` answers before the built-ins. It records what it was sent.
 *
 * It is `Deno.serve`, which notices a caller that goes away only when the
 * whole request body came with the headers (Deno 2.9): on a fresh
 * connection, a body above ~400 bytes leaves `aborted` at 0 even though the
 * worker aborted the call. Keep the payloads of abort checks small (or use a
 * node:http server, as `client_gone_test.ts` does).
 *
 * @module
 */
import { sleep } from "../../dev/_async.ts";

/** A request as a {@linkcode Script} sees it. */
export interface ScriptedRequest {
  /** The request (its body is already read: use `text` / `body`). */
  req: Request;
  method: string;
  path: string;
  /** The body as sent. */
  text: string;
  /** The body parsed as JSON; `undefined` when it is not JSON. */
  body: unknown;
  /** Aborts when the caller goes away (see the module note). */
  signal: AbortSignal;
}

/** Answers a request; `undefined` leaves it to the built-in routes. */
export type Script = (
  r: ScriptedRequest,
) => Response | undefined | Promise<Response | undefined>;

/** Options of {@linkcode startUpstream}. */
export interface UpstreamOptions {
  /** Port to listen on (0: a free one). @default {0} */
  port?: number;
  /** Status of `GET /health` answers. @default {200} */
  healthStatus?: number;
  /** `GET /health` never answers (until the caller goes away). @default {false} */
  hangHealth?: boolean;
  /** Workload units per second of each `POST /work`. @default {50} */
  rate?: number;
  /** Status of `POST /work` answers. @default {200} */
  workStatus?: number;
  /** Answers every request but `GET /health` before the built-ins. */
  script?: Script;
}

/** One request the server received (but `GET /health`). */
export interface UpstreamCall {
  method: string;
  path: string;
  /** The body as sent. */
  text: string;
  /** The body parsed as JSON; `undefined` when it is not JSON. */
  body: unknown;
  headers: Headers;
}

/** What the scripted server saw; its settings may be changed while it runs. */
export interface UpstreamHandle extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  /** Every request but `GET /health`, in arrival order. */
  calls: UpstreamCall[];
  /** JSON bodies received, in arrival order. */
  bodies: Record<string, unknown>[];
  /** Request headers received with those bodies, in arrival order. */
  headers: Headers[];
  /** Requests whose client (the worker) went away before the end. */
  aborted: number;
  /** Requests being served now, and the most at once. */
  active: number;
  maxActive: number;
  /** Unix ms at which each stream chunk was produced. */
  chunkTimes: number[];
  /** `GET /health` probes received. */
  healthProbes: number;
  /** Status of `GET /health` answers. */
  healthStatus: number;
  /** `GET /health` never answers (until the client goes away). */
  hangHealth: boolean;
  /** Workload units per second of each `POST /work`. */
  rate: number;
  /** Status of `POST /work` answers. */
  workStatus: number;
  /** `POST /work` requests received. */
  workRequests: number;
  /** `POST /work` requests with `hold: true` waiting for their client to leave. */
  held: number;
  /** Stops listening (waits for answers in progress). */
  close(): Promise<void>;
}

const enc = new TextEncoder();

/** Resolves once `signal` aborts. */
function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/**
 * A streamed body of `chunks`, sent `gapMs` apart; it ends quietly when
 * `signal` aborts (the caller went away).
 */
export function spacedStream(
  chunks: string[],
  gapMs: number,
  signal: AbortSignal,
): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller): Promise<void> {
      if (i > 0) {
        if (!await sleep(gapMs, signal)) return; // being cancelled
      }
      if (i >= chunks.length) controller.close();
      else controller.enqueue(enc.encode(chunks[i++]));
    },
  });
}

/** Starts the scripted server on 127.0.0.1. */
export function startUpstream(options: UpstreamOptions = {}): UpstreamHandle {
  const handle: UpstreamHandle = {
    url: "",
    port: 0,
    calls: [],
    bodies: [],
    headers: [],
    aborted: 0,
    active: 0,
    maxActive: 0,
    chunkTimes: [],
    healthProbes: 0,
    healthStatus: options.healthStatus ?? 200,
    hangHealth: options.hangHealth ?? false,
    rate: options.rate ?? 50,
    workStatus: options.workStatus ?? 200,
    workRequests: 0,
    held: 0,
    close: () => server.shutdown(),
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
  const enter = () => {
    handle.active++;
    handle.maxActive = Math.max(handle.maxActive, handle.active);
  };
  const health = async (signal: AbortSignal): Promise<Response> => {
    handle.healthProbes++;
    if (handle.hangHealth) {
      await untilAborted(signal);
      return new Response(null, { status: 504 });
    }
    const ok = handle.healthStatus === 200;
    return Response.json({ status: ok ? "ok" : "loading" }, {
      status: handle.healthStatus,
    });
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: options.port ?? 0, onListen: () => {} },
    async (req) => {
      const { signal } = req;
      const path = new URL(req.url).pathname;
      if (req.method === "GET" && path === "/health") return health(signal);
      const text = await req.text();
      let body: unknown = undefined;
      try {
        body = JSON.parse(text);
        handle.bodies.push(body as Record<string, unknown>);
        handle.headers.push(req.headers);
      } catch { /* not JSON */ }
      handle.calls.push({
        method: req.method,
        path,
        text,
        body,
        headers: req.headers,
      });
      signal.addEventListener("abort", () => handle.aborted++, { once: true });
      const scripted = await options.script?.({
        req,
        method: req.method,
        path,
        text,
        body,
        signal,
      });
      if (scripted) return scripted;
      return builtIn(path, (body ?? {}) as Record<string, unknown>, signal);
    },
  );

  async function builtIn(
    path: string,
    body: Record<string, unknown>,
    signal: AbortSignal,
  ): Promise<Response> {
    switch (path) {
      case "/echo":
        return Response.json({ received: body }, {
          headers: { "x-model": "scripted" },
        });
      case "/hang":
        // Never answers; ends only when the worker aborts the call.
        enter();
        await untilAborted(signal);
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
      case "/work": {
        // Workload `w` served in `w / rate` seconds, unlimited slots.
        handle.workRequests++;
        if (body.hold) {
          handle.held++;
          await untilAborted(signal);
          handle.held--;
          return new Response(null, { status: 499 });
        }
        const ms = (Number(body.w ?? 0) / handle.rate) * 1000;
        await new Promise((r) => setTimeout(r, ms));
        return Response.json({ w: body.w ?? 0 }, {
          status: handle.workStatus,
        });
      }
      case "/stream":
      case "/stall":
      case "/reset":
        return stream(path, body);
      default:
        return Response.json({ error: "no such route" }, { status: 404 });
    }
  }

  function stream(path: string, body: Record<string, unknown>): Response {
    const chunks = Number(body.chunks ?? 5);
    const gap = Number(body.gap_ms ?? 100);
    const reset = path === "/reset";
    // Streams two chunks, then sends nothing more.
    const stall = path === "/stall";
    let timer: ReturnType<typeof setTimeout> | undefined;
    let i = 0;
    let cancelled = false;
    enter();
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        const next = () => {
          // The worker may go away between two chunks.
          if (cancelled) return;
          try {
            step();
          } catch {
            cancelled = true;
            handle.active--;
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
        clearTimeout(timer);
        if (cancelled) return;
        cancelled = true;
        handle.active--;
      },
    });
    return new Response(stream, {
      headers: { "content-type": "text/event-stream" },
    });
  }

  Object.assign(handle, {
    port: server.addr.port,
    url: `http://127.0.0.1:${server.addr.port}`,
  });
  return handle;
}
