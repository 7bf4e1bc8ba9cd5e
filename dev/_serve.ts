/**
 * A quiet `Deno.serve` wrapper for the dev stand-ins: binds 127.0.0.1, prints
 * nothing, gives each request an abort signal that fires when the client goes
 * away or the server is stopped, and stops without leaking anything.
 *
 * `Deno.serve` (Deno 2.9) watches the socket for a client that leaves only
 * when the whole request body came with the headers: on a fresh connection a
 * body above ~400 bytes arrives later, and a client (the worker) that then
 * aborts goes unnoticed until the answer is written. The stand-ins' `aborted`
 * counters are reliable for small payloads only.
 *
 * @module
 */

/** What a handler gets besides the request. */
export interface RequestScope {
  /** Aborts when the client disconnects, the body is cancelled, or the
   * server stops. */
  readonly signal: AbortSignal;
  /** `ip:port` of the client, as uvicorn prints it in access lines. */
  readonly remote: string;
  /** `true` when {@linkcode signal} fired because the client went away. */
  clientGone(): boolean;
  /** Marks the client as gone (call from a response body's `cancel()`). */
  cancel(): void;
}

/** A request handler for {@linkcode DevServer}. */
export type DevHandler = (
  req: Request,
  scope: RequestScope,
) => Response | Promise<Response>;

/** One HTTP listener on 127.0.0.1 with a kill switch for in-flight work. */
export class DevServer {
  #server: Deno.HttpServer<Deno.NetAddr>;
  #kill = new AbortController();
  #stopping: Promise<void> | undefined;

  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** The bound port. */
  readonly port: number;

  /**
   * Starts listening at once.
   *
   * @param port port to bind; 0 picks a free one.
   * @param handler answers every request.
   * @param hostname address to bind (a control plane a remote worker reports to may need more than loopback).
   */
  constructor(port: number, handler: DevHandler, hostname = "127.0.0.1") {
    const kill = this.#kill.signal;
    this.#server = Deno.serve({
      hostname,
      port,
      onListen: () => {},
      onError: () => new Response("Internal Server Error", { status: 500 }),
    }, (req, info) => {
      const cancelled = new AbortController();
      const scope: RequestScope = {
        signal: AbortSignal.any([req.signal, cancelled.signal, kill]),
        remote: `${info.remoteAddr.hostname}:${info.remoteAddr.port}`,
        clientGone: () => req.signal.aborted || cancelled.signal.aborted,
        cancel: () => cancelled.abort(),
      };
      return handler(req, scope);
    });
    this.port = this.#server.addr.port;
    this.url = `http://127.0.0.1:${this.port}`;
  }

  /** Aborts when {@linkcode stop} is called. */
  get killSignal(): AbortSignal {
    return this.#kill.signal;
  }

  /** `true` once {@linkcode stop} was called. */
  get stopped(): boolean {
    return this.#stopping !== undefined;
  }

  /**
   * Aborts in-flight work, stops accepting connections (clients then get
   * "connection refused") and resolves when the listener is gone. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#kill.abort();
      await this.#server.shutdown();
      await this.#server.finished;
    })();
    return this.#stopping;
  }
}

/** How a generation ended: finished, client gone, or server killed. */
export type RunOutcome = "ok" | "client" | "killed";

/**
 * A streamed body fed by `run`, which gets a `send` that ignores a gone
 * client. When `run` resolves the stream closes, except on `"killed"`, where
 * it errors (the client sees the connection drop, as when a server dies).
 * The body's `cancel()` marks the client as gone in `scope`.
 */
export function eventStream(
  scope: RequestScope,
  run: (send: (bytes: Uint8Array) => void) => Promise<RunOutcome>,
): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start: (controller) => {
      const send = (bytes: Uint8Array): void => {
        try {
          controller.enqueue(bytes);
        } catch { /* the client is gone */ }
      };
      void run(send).then((outcome) => {
        try {
          if (outcome === "killed") controller.error(new Error("server died"));
          else controller.close();
        } catch { /* already cancelled */ }
      });
    },
    cancel: () => scope.cancel(),
  });
}

/** A JSON response with the given status. */
export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** Reads a JSON body; `undefined` when it is not valid JSON. */
export async function readJson(req: Request): Promise<unknown> {
  try {
    return JSON.parse(await req.text());
  } catch {
    return undefined;
  }
}

/** Parses JSON text; `undefined` when it is not valid JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** `true` for a plain JSON object (not an array, not null). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The reason phrase uvicorn prints after a status code. */
export function reasonPhrase(status: number): string {
  const phrases: Record<number, string> = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
  };
  return phrases[status] ?? "";
}
