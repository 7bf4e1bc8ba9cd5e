/**
 * One accepted connection of the worker's server (`connections.ts`): its
 * requests in flight, the wait it is in (headers, keep-alive, linger) and
 * the safe way to close it in each state.
 *
 * @module
 */
import type { BodyWait, RequestConnection } from "./conn_context.ts";

/** How long a connection is kept after an answer that closes it, ms. */
export const LINGER_MS = 1000;

/**
 * Set while a connection aborts its signal a connection's signal. Deno's listener on
 * that signal throws "Bad resource ID" when the connection ended a moment
 * before (its resource is freed before `finished` settles, so the race
 * cannot be ruled out), and an error thrown in an event listener ends the
 * process. Only that error, only then, is stopped here.
 */
let aborting = false;
globalThis.addEventListener("error", (e) => {
  if (aborting && e.error instanceof Deno.errors.BadResource) {
    e.preventDefault();
  }
});

/**
 * One accepted connection and its timer.
 *
 * Two ways to close it, each safe only in some states (Deno 2.9):
 * - graceful (`server.shutdown()`): lets an answer finish writing (for a
 *   plain body `completed` settles before it is written), but waits forever
 *   while Deno drains a request body the client never finishes;
 * - forced (the serve signal): cuts whatever is being written.
 * So connections whose last answer left a body unread (the body reader
 * gave up on it, or no route read it) are forced after {@linkcode LINGER_MS}
 * (those answers are small errors); connections that never had a request
 * are forced; the others close gracefully.
 */
export class Connection implements RequestConnection {
  inFlight = 0;
  /** Requests started on this connection. */
  served = 0;
  /** When the current wait (headers, keep-alive, linger) started. */
  since: number;
  /** How long that wait may last; 0: forever. */
  limitMs: number;
  /** Its last answer left a request body unread. */
  closeWhenIdle = false;
  /** The server is shutting down: close once idle. */
  draining = false;
  closing = false;
  readonly #abort = new AbortController();
  /** Deno's server for this one connection. */
  server?: Deno.HttpServer;
  /** Settles when the connection is closed. */
  finished: Promise<void> = Promise.resolve();

  constructor(
    readonly bodyTimeoutMs: number,
    headersTimeoutMs: number,
    private readonly keepAliveTimeoutMs: number,
  ) {
    this.since = performance.now();
    this.limitMs = headersTimeoutMs;
  }

  /** Aborted to close the connection at once. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  closeAfterResponse(): void {
    this.closeWhenIdle = true;
  }

  // Body reads of this connection's requests that have a deadline (one at
  // a time on HTTP/1, a few on HTTP/2).
  #bodyWaits: BodyWait[] = [];

  waitBody(wait: BodyWait): void {
    this.#bodyWaits.push(wait);
  }

  endBodyWait(wait: BodyWait): void {
    const i = this.#bodyWaits.indexOf(wait);
    if (i >= 0) this.#bodyWaits.splice(i, 1);
  }

  /** Fires the body deadlines that passed (the server's sweep calls it). */
  checkBodies(now: number): void {
    if (this.#bodyWaits.length === 0) return;
    for (const wait of this.#bodyWaits.slice()) {
      if (now >= wait.at) {
        this.endBodyWait(wait);
        wait.fire();
      }
    }
  }

  started(): void {
    this.inFlight++;
    this.served++;
  }

  /** A request's answer is sent (or given up); `unread`: its body was not. */
  done(unread: boolean): void {
    if (unread) this.closeWhenIdle = true;
    if (--this.inFlight > 0) return;
    this.since = performance.now();
    if (this.closeWhenIdle) this.limitMs = LINGER_MS;
    else if (this.draining) this.#closeGracefully();
    else this.limitMs = this.keepAliveTimeoutMs;
  }

  expired(now: number): boolean {
    return this.inFlight === 0 && this.limitMs > 0 && !this.closing &&
      now - this.since >= this.limitMs;
  }

  /** Closes a connection with nothing in flight, the safe way for it. */
  closeIdle(): void {
    if (this.closeWhenIdle || this.served === 0) this.#force();
    else this.#closeGracefully();
  }

  /** Closes once idle: what is in flight finishes first. */
  drain(now: number): void {
    this.draining = true;
    if (this.inFlight > 0) return;
    if (!this.closeWhenIdle || now - this.since >= LINGER_MS) this.closeIdle();
    else this.limitMs = LINGER_MS;
  }

  #closeGracefully(): void {
    if (this.closing) return;
    this.closing = true;
    this.server?.shutdown().catch(noop);
  }

  #force(): void {
    if (this.closing) return;
    this.closing = true;
    aborting = true;
    try {
      this.#abort.abort();
    } finally {
      aborting = false;
    }
  }
}

function noop(): void {}
