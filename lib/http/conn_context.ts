/**
 * What a request knows of the connection it came on: the time its body may
 * take, and a way to close the connection once the answer is sent; and
 * whether its body was read. The connection layer ({@linkcode ./connections.ts})
 * binds each request; the body reader ({@linkcode ./json.ts}) uses it. A
 * request that came another way (a test calling `app.fetch`) has none.
 *
 * @module
 */

/** The connection side of one request. */
export interface RequestConnection {
  /** Milliseconds the whole body may take to arrive; 0: no limit. */
  readonly bodyTimeoutMs: number;
  /**
   * Closes the connection after the answer is sent: Deno keeps a connection
   * open (draining the body) even when the answer says `connection: close`.
   */
  closeAfterResponse(): void;
  /**
   * Calls `wait.fire` once `wait.at` (`performance.now()` ms) has passed,
   * unless {@linkcode endBodyWait} came first: checked by the connection
   * layer's sweep, no timer per request.
   */
  waitBody(wait: BodyWait): void;
  /** The body came (or failed): `wait` no longer fires. */
  endBodyWait(wait: BodyWait): void;
}

/** A body read with a deadline (see {@linkcode RequestConnection.waitBody}). */
export interface BodyWait {
  at: number;
  fire: () => void;
}

const byRequest = new WeakMap<Request, RequestConnection>();
const bodiesRead = new WeakSet<Request>();

/** Ties `req` to its connection. */
export function bindConnection(req: Request, conn: RequestConnection): void {
  byRequest.set(req, conn);
}

/** The connection `req` came on, if it was served by the connection layer. */
export function connectionOf(req: Request): RequestConnection | undefined {
  return byRequest.get(req);
}

/**
 * Notes that the body reader took charge of `req`'s body (read it, or
 * refused it and closes the connection).
 */
export function noteBodyRead(req: Request): void {
  bodiesRead.add(req);
}

/** Whether {@linkcode noteBodyRead} was called for `req`. */
export function bodyWasRead(req: Request): boolean {
  return bodiesRead.has(req);
}
