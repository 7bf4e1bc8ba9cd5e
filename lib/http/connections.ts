/**
 * The worker's HTTP server, with the connection limits `Deno.serve` lacks.
 *
 * `Deno.serve` (Deno 2.9) has no idle, header or body timeout, and its
 * accept loop ends on the first accept error: when the process runs out of
 * file descriptors (EMFILE) the server stops for good and, unless
 * `finished` is caught, the process exits. So this module accepts
 * connections itself (`Deno.listen`/`Deno.listenTls`) and hands each one to
 * Deno's own HTTP engine (the same hyper/h1 code `Deno.serve` runs, through
 * the runtime's `serveHttpOnConnection`), which keeps throughput, streaming,
 * HTTP/2 and the request `signal`. Around each connection it keeps:
 *
 * - a headers timeout: a new connection has to deliver its first request
 *   in time;
 * - a keep-alive timeout: a connection with nothing in flight is closed
 *   after it (aiohttp's 75 s);
 * - the body timeout, handed to the body reader through
 *   {@linkcode bindConnection};
 * - on accept errors (EMFILE, ENFILE, ...) a retry with backoff, closing
 *   idle connections first to free descriptors.
 *
 * Without `serveHttpOnConnection` (another Deno) it falls back to
 * `Deno.serve` and says so.
 *
 * Longer than most modules: the accept loop, its EMFILE recovery and the
 * per-connection timers share the connection table.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { bindConnection, bodyWasRead } from "./conn_context.ts";
import { delay } from "../std/async.ts";
import { Connection } from "./connection.ts";
import { jsonError } from "./errors.ts";

const log = getLogger(["edgeworker", "connections"]);

/** Connection timeouts, in milliseconds; 0 turns one off. */
export interface ConnectionTimeouts {
  /**
   * Time a new connection has to deliver its first request's headers. (A
   * TLS handshake that never ends keeps its socket anyway: Deno 2.9 runs it
   * in a task of its own that only the client can end.)
   * @default {30000}
   */
  headersTimeoutMs?: number;
  /**
   * Time a connection with no request in flight is kept open.
   * @default {75000}
   */
  keepAliveTimeoutMs?: number;
  /**
   * Time a request body has to arrive whole; checked by the body reader.
   * @default {300000}
   */
  bodyTimeoutMs?: number;
}

/** The defaults of {@linkcode ConnectionTimeouts}. */
export const DEFAULT_TIMEOUTS: Required<ConnectionTimeouts> = {
  headersTimeoutMs: 30_000,
  keepAliveTimeoutMs: 75_000,
  bodyTimeoutMs: 300_000,
};

/** Options of {@linkcode serveConnections}. */
export interface ServeOptions extends ConnectionTimeouts {
  hostname: string;
  port: number;
  /** PEM certificate: serves HTTPS (HTTP/2 by ALPN). */
  cert?: string;
  /** PEM private key, with `cert`. */
  key?: string;
}

/** A running server: the part of `Deno.HttpServer` the worker uses. */
export interface Server {
  readonly addr: Deno.NetAddr;
  /** Resolves when the listener and every connection are closed. */
  readonly finished: Promise<void>;
  /** Stops accepting; lets requests in flight finish, then closes. */
  shutdown(): Promise<void>;
}

type ServeOnConnection = (
  conn: Deno.Conn,
  signal: AbortSignal | undefined,
  handler: Deno.ServeHandler<Deno.NetAddr>,
  onError: (error: unknown) => Response,
  onListen: () => void,
) => Deno.HttpServer;

/** The runtime's per-connection server, when this Deno has it. */
function runtimeServeOnConnection(): ServeOnConnection | undefined {
  const internal = Reflect.get(Deno, Reflect.get(Deno, "internal") ?? "");
  const fn = internal?.serveHttpOnConnection;
  // (connection, signal, handler, onError, onListen) in Deno 2.9.
  return typeof fn === "function" && fn.length === 5 ? fn : undefined;
}

const serveOnConnection = runtimeServeOnConnection();

/** How long a connection must have been idle to be closed for room, ms. */
const EVICT_MIN_IDLE_MS = 1000;
/** How many idle connections one accept error closes, at most. */
const EVICT_BATCH = 32;
/** Longest pause between accept retries, ms. */
const MAX_BACKOFF_MS = 1000;
/** At most one accept-error warning per this many ms. */
const WARN_EVERY_MS = 10_000;

function onError(error: unknown): Response {
  log.error("Unhandled error in a request handler: {error}", {
    error: error instanceof Error ? error.stack ?? error.message : error,
  });
  return jsonError(500, { error: "internal server error" });
}

/** Out of descriptors, process-wide (EMFILE) or system-wide (ENFILE). */
function outOfDescriptors(e: unknown): boolean {
  const text = e instanceof Error
    ? `${e.message} ${Reflect.get(e, "code")}`
    : String(e);
  return /os error 2[34]\b|EMFILE|ENFILE|too many open files/i.test(text);
}

/**
 * Serves `handler` on `options.hostname:port` with the connection limits
 * above.
 *
 * @throws the listen error (port taken, bad TLS files) synchronously
 */
export function serveConnections(
  options: ServeOptions,
  handler: Deno.ServeHandler<Deno.NetAddr>,
): Server {
  const timeouts = { ...DEFAULT_TIMEOUTS, ...definedOnly(options) };
  if (!serveOnConnection) {
    log.warn(
      "This Deno has no serveHttpOnConnection: serving with Deno.serve, without connection timeouts or descriptor-exhaustion recovery",
    );
    return Deno.serve({
      hostname: options.hostname,
      port: options.port,
      ...(options.cert ? { cert: options.cert, key: options.key ?? "" } : {}),
      onListen: () => {},
    }, handler);
  }
  return new ConnectionServer(options, timeouts, serveOnConnection, handler);
}

function definedOnly(o: ConnectionTimeouts): ConnectionTimeouts {
  return Object.fromEntries(
    Object.entries({
      headersTimeoutMs: o.headersTimeoutMs,
      keepAliveTimeoutMs: o.keepAliveTimeoutMs,
      bodyTimeoutMs: o.bodyTimeoutMs,
    }).filter(([, v]) => v !== undefined),
  );
}

class ConnectionServer implements Server {
  readonly addr: Deno.NetAddr;
  readonly finished: Promise<void>;
  readonly #listener: Deno.Listener;
  readonly #conns = new Set<Connection>();
  readonly #sweep: ReturnType<typeof setInterval>;
  #closing = false;
  #lastWarn = -Infinity;

  constructor(
    options: ServeOptions,
    private readonly timeouts: Required<ConnectionTimeouts>,
    private readonly serveOn: ServeOnConnection,
    private readonly handler: Deno.ServeHandler<Deno.NetAddr>,
  ) {
    const where = { hostname: options.hostname, port: options.port };
    this.#listener = options.cert
      ? Deno.listenTls({
        ...where,
        cert: options.cert,
        key: options.key ?? "",
        alpnProtocols: ["h2", "http/1.1"],
      })
      : Deno.listen(where);
    this.addr = this.#listener.addr as Deno.NetAddr;
    const waits = [timeouts.headersTimeoutMs, timeouts.keepAliveTimeoutMs]
      .filter((t) => t > 0);
    // Timers are checked by one sweep, not set per request: re-arming a
    // timer on every answer costs more than a scan of the open connections.
    const tick = Math.min(1000, Math.max(10, Math.min(...waits) / 10));
    this.#sweep = setInterval(() => this.#closeExpired(), tick);
    this.finished = this.#acceptLoop().then(async () => {
      await Promise.all([...this.#conns].map((c) => c.finished));
      clearInterval(this.#sweep);
    });
  }

  async shutdown(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      this.#listener.close();
      // Requests in flight finish; idle connections close now.
      const now = performance.now();
      for (const c of this.#conns) c.drain(now);
    }
    await this.finished;
  }

  async #acceptLoop(): Promise<void> {
    let backoff = 0;
    while (!this.#closing) {
      let tcp: Deno.Conn;
      try {
        tcp = await this.#listener.accept();
        backoff = 0;
      } catch (e) {
        if (this.#closing) break;
        const freed = outOfDescriptors(e) ? this.#closeIdle(EVICT_BATCH) : 0;
        backoff = freed > 0
          ? 5
          : Math.min(MAX_BACKOFF_MS, Math.max(10, backoff * 2));
        this.#warn(e, freed);
        await delay(backoff);
        continue;
      }
      this.#serve(tcp);
    }
  }

  #serve(tcp: Deno.Conn): void {
    const conn = new Connection(
      this.timeouts.bodyTimeoutMs,
      this.timeouts.headersTimeoutMs,
      this.timeouts.keepAliveTimeoutMs,
    );
    const handler = this.handler;
    const onRequest = (req: Request, info: Deno.ServeHandlerInfo) => {
      conn.started();
      bindConnection(req, conn);
      // Read now: a request throws on any access once it is answered.
      const headers = req.headers;
      const length = headers.get("content-length");
      const hasBody = (length !== null && length !== "0") ||
        headers.has("transfer-encoding");
      const done = () => conn.done(hasBody && !bodyWasRead(req));
      info.completed.then(done, done);
      return handler(req, info as Deno.ServeHandlerInfo<Deno.NetAddr>);
    };
    try {
      conn.server = this.serveOn(
        tcp,
        conn.signal,
        onRequest,
        onError,
        noop,
      );
    } catch (e) {
      try {
        tcp.close();
      } catch { /* already closed */ }
      this.#warn(e, 0);
      return;
    }
    this.#conns.add(conn);
    const server = conn.server;
    conn.finished = server.finished.catch(async (e) => {
      log.debug("Connection ended with an error: {error}", {
        error: e instanceof Error ? e.message : String(e),
      });
      // After an error (a failed TLS handshake, ...) Deno's finished
      // rejects before it frees the connection's resource: free it here.
      await server.shutdown().catch(noop);
    }).finally(() => this.#conns.delete(conn));
  }

  #closeExpired(): void {
    const now = performance.now();
    for (const c of this.#conns) if (c.expired(now)) c.closeIdle();
  }

  /**
   * Closes up to `n` connections idle for {@linkcode EVICT_MIN_IDLE_MS} or
   * more, oldest first: a connection just opened gets the time to send its
   * request.
   */
  #closeIdle(n: number): number {
    const now = performance.now();
    let closed = 0;
    for (const c of this.#conns) {
      if (closed >= n) break;
      if (
        c.inFlight === 0 && !c.closing && now - c.since >= EVICT_MIN_IDLE_MS
      ) {
        c.closeIdle();
        closed++;
      }
    }
    return closed;
  }

  #warn(e: unknown, freed: number): void {
    const now = performance.now();
    if (now - this.#lastWarn < WARN_EVERY_MS) return;
    this.#lastWarn = now;
    const where = { port: this.addr.port, open: this.#conns.size, freed };
    if (outOfDescriptors(e)) {
      log.warn(
        "Out of file descriptors on port {port} with {open} connections open; closed {freed} idle ones to make room. Raise the open-file limit: ulimit -n $(ulimit -Hn)",
        where,
      );
    } else {
      log.warn("Cannot accept a connection on port {port}: {error}", {
        ...where,
        error: e instanceof Error ? e.message : String(e),
      });
    }
  }
}

function noop(): void {}
