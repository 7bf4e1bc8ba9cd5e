/**
 * The worker's HTTP/1.1 client for the model server, on plain sockets.
 *
 * `fetch` is the largest single cost of a forwarded request: its
 * `Request`, `Headers` and `AbortSignal` objects, WebIDL conversions, URL
 * parsing, a resource per body and, for a body that must never be resent,
 * a JS pump from a stream into the runtime. A model server on the same
 * machine needs none of it. This client writes the request head and body
 * in one write on a pooled connection and parses the answer's head and
 * framing (`content-length`, chunked, or to the close) itself, so a
 * forwarded request costs about a third less CPU than through `fetch`
 * (README, "Benchmark").
 *
 * What it guarantees:
 *
 * - a request is written once and never resent: a connection that closes
 *   before the answer is an error the caller sees (a 502);
 * - an idle pooled connection keeps a read pending, so one the server
 *   closed (or wrote to unasked, as a 408) leaves the pool at once, and
 *   is dropped after `idleSeconds` idle (before the server's own idle
 *   close: `EDGEWORKER_MODEL_IDLE_SECONDS`);
 * - the request's signal closes the connection at once, so the model
 *   server sees the client leave as it would through `fetch`;
 * - a streamed answer's chunks come out as the model sent them (one
 *   chunk of a chunked body is one chunk out, never merged), each an
 *   exact-size copy;
 * - `accept-encoding: identity` is asked; a model that compresses anyway
 *   (gzip, deflate) is decoded, any other coding is an error.
 *
 * `https:` model servers are reached with `Deno.connectTls` (HTTP/1.1).
 *
 * @module
 */
import { abortable } from "../std/async.ts";
import { errorText } from "../std/errors.ts";
import { isomorphicDecode } from "../std/bytes.ts";

/** Options of {@linkcode ModelClient}. */
export interface ModelClientOptions {
  /**
   * Seconds an unused pooled connection is kept.
   * @default {1.5}
   */
  idleSeconds?: number;
  /**
   * Largest answer head (status line and headers) accepted, in bytes.
   * @default {65536}
   */
  maxHeadBytes?: number;
  /**
   * PEM certificates trusted for an `https:` model server, besides the
   * system's (a private CA, a self-signed engine).
   */
  caCerts?: string[];
}

/** Headers as the answer carried them: names lower-cased, in order. */
export class HeaderList implements Iterable<[string, string]> {
  /** The `[name, value]` pairs; a repeated name appears each time. */
  readonly pairs: [string, string][];

  /** A list of `pairs` (names already lower-cased). */
  constructor(pairs: [string, string][] = []) {
    this.pairs = pairs;
  }

  /** The values of `name` joined with ", ", or null (as `Headers.get`). */
  get(name: string): string | null {
    let found: string | null = null;
    for (const [n, v] of this.pairs) {
      if (n === name) found = found === null ? v : `${found}, ${v}`;
    }
    return found;
  }

  /** Whether the answer has `name`. */
  has(name: string): boolean {
    for (const [n] of this.pairs) if (n === name) return true;
    return false;
  }

  /** The pairs, in order. */
  [Symbol.iterator](): Iterator<[string, string]> {
    return this.pairs[Symbol.iterator]();
  }
}

/** What a model answer's headers must offer (a `Headers` does too). */
export interface HeaderSource extends Iterable<[string, string]> {
  get(name: string): string | null;
  has(name: string): boolean;
}

/**
 * An answer whose head has arrived. Its body is read once: whole with
 * {@linkcode ModelAnswer.bytes}, as a stream with
 * {@linkcode ModelAnswer.stream}, or dropped with
 * {@linkcode ModelAnswer.cancel}.
 */
export interface ModelAnswer {
  readonly status: number;
  readonly headers: HeaderSource;
  /** False for an answer that has no body (204, 304, a `Response` without one). */
  readonly hasBody: boolean;
  /** The whole body. */
  bytes(): Promise<Uint8Array<ArrayBuffer>>;
  /**
   * The body chunk by chunk, as it arrives (pull-based: nothing is read
   * ahead of the consumer). `watch` is told each step from inside the
   * stream itself, so a relay needs no second stream around it.
   */
  stream(watch?: StreamWatch): ReadableStream<Uint8Array>;
  /** Drops the body unread. */
  cancel(): Promise<void>;
}

/** What a relay learns from a body stream, in order, each step once. */
export interface StreamWatch {
  /** The consumer asked for the next chunk. */
  pulling(): void;
  /** A chunk is about to be handed over. */
  chunk(): void;
  /** The body ended whole (called after the stream is closed). */
  done(): void;
  /** The body broke off (called before the stream errors). */
  failed(error: unknown): void;
  /** The consumer cancelled the stream. */
  cancelled(): void;
}

/**
 * `source` as a stream that tells `watch` each step (for bodies that do not
 * come from a {@linkcode ModelClient}: a local handler's, a response
 * generator's, a decoded one).
 */
export function watchedStream(
  source: ReadableStream<Uint8Array>,
  watch: StreamWatch,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      watch.pulling();
      try {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          watch.done();
          return;
        }
        watch.chunk();
        controller.enqueue(value);
      } catch (e) {
        watch.failed(e);
        controller.error(e);
      }
    },
    cancel(reason) {
      watch.cancelled();
      return reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
}

/** A model call that failed before an answer: the text says why. */
export class ModelCallError extends Error {
  override name = "ModelCallError";
}

const encoder = new TextEncoder();
const READ_BYTES = 16 * 1024;
/** Answers of a known length up to this size are read into one buffer. */
const ONE_BUFFER_BYTES = 16 * 1024 * 1024;
/** Bodies up to this size are copied behind the head and sent in one write. */
const ONE_WRITE_BYTES = 64 * 1024;

/** The value of a hex digit's byte, or -1. */
function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  const l = b | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x57 : -1;
}
const CR = 0x0d;
const LF = 0x0a;

interface Target {
  secure: boolean;
  hostname: string;
  port: number;
  /** The `host` header. */
  host: string;
  /** The pool a connection to this target goes back to: scheme and host. */
  pool: string;
  /** Path and query, as sent. */
  path: string;
}

/** How the body of an answer ends. */
type Framing =
  | { kind: "none" }
  | { kind: "length"; left: number }
  | { kind: "chunked" }
  | { kind: "close" };

/**
 * A pool of HTTP/1.1 connections to model servers, and the one way the
 * worker sends them requests ({@linkcode ModelClient.post}).
 */
export class ModelClient {
  readonly #idleMs: number;
  readonly #maxHead: number;
  readonly #caCerts: string[] | undefined;
  readonly #idle = new Map<string, Connection[]>();
  readonly #targets = new Map<string, Target>();
  readonly #sweep: ReturnType<typeof setInterval>;
  #closed = false;

  /** A client; {@linkcode ModelClient.close} it when done. */
  constructor(options: ModelClientOptions = {}) {
    this.#idleMs = Math.max(1, Math.round((options.idleSeconds ?? 1.5) * 1000));
    this.#maxHead = options.maxHeadBytes ?? 64 * 1024;
    this.#caCerts = options.caCerts;
    this.#sweep = setInterval(
      () => this.#dropIdle(performance.now()),
      Math.min(1000, Math.max(50, this.#idleMs / 4)),
    );
    Deno.unrefTimer(this.#sweep);
  }

  /** Idle connections in the pool now (tests read it). */
  get idleConnections(): number {
    let n = 0;
    for (const list of this.#idle.values()) n += list.length;
    return n;
  }

  /**
   * POSTs `body` (JSON) to `url` once and resolves when the answer's head
   * has arrived. `signal` closes the connection at once, whatever stage
   * the call is at (the answer's body too).
   *
   * @throws {ModelCallError} the model server is unreachable, closed the
   * connection before an answer, or answered something that is not HTTP/1
   * @throws the signal's reason when it aborted
   */
  async post(
    url: string,
    body: Uint8Array,
    accept: string | null | undefined,
    signal: AbortSignal,
  ): Promise<ModelAnswer> {
    signal.throwIfAborted();
    const target = this.#target(url);
    const conn = this.#take(target.pool) ??
      await this.#connectFor(target, signal);
    conn.watch(signal);
    try {
      signal.throwIfAborted();
      // A large body goes in a second write rather than copied behind the head.
      const large = body.byteLength > ONE_WRITE_BYTES;
      const length = body.byteLength;
      await conn.write(
        requestBytes(target, length, accept, large ? undefined : body),
      );
      if (large) await conn.write(body);
      return await conn.readAnswer(this.#maxHead, (c) => this.#release(c));
    } catch (e) {
      conn.destroy();
      if (signal.aborted) throw signal.reason;
      throw e instanceof ModelCallError ? e : new ModelCallError(errorText(e));
    }
  }

  /** Closes the idle connections; calls in flight finish on theirs. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#sweep);
    for (const list of this.#idle.values()) for (const c of list) c.destroy();
    this.#idle.clear();
  }

  /** {@linkcode ModelClient.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #target(url: string): Target {
    let t = this.#targets.get(url);
    if (t) return t;
    const u = new URL(url);
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new ModelCallError(`unsupported scheme ${u.protocol}`);
    }
    const secure = u.protocol === "https:";
    t = {
      secure,
      hostname: u.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: Number(u.port || (secure ? 443 : 80)),
      host: u.host,
      pool: `${u.protocol}//${u.host}`,
      path: `${u.pathname}${u.search}`,
    };
    if (this.#targets.size < 1024) this.#targets.set(url, t);
    return t;
  }

  #take(pool: string): Connection | undefined {
    const list = this.#idle.get(pool);
    const now = performance.now();
    while (list?.length) {
      const c = list.pop()!;
      if (!c.dead && now - c.idleSince < this.#idleMs) return c.use();
      c.destroy();
    }
    return undefined;
  }

  /**
   * A new connection, or the signal's reason once it aborts first (a host
   * that drops SYNs holds a connect for minutes); one made after is closed.
   */
  #connectFor(t: Target, signal: AbortSignal): Promise<Connection> {
    const connecting = this.#connect(t, signal);
    connecting.then((c) => signal.aborted && c.destroy(), () => {});
    return abortable(connecting, signal);
  }

  // A plain connect is given the signal too, so an aborted one frees its
  // socket at once (Deno.connectTls takes none: its late connection is
  // closed by #connectFor).
  async #connect(t: Target, signal: AbortSignal): Promise<Connection> {
    // Deno.connect tries the first address a name resolves to only; for
    // `localhost` both loopbacks are tried, so a model server bound to one
    // family is found whichever the resolver puts first. Nothing was sent
    // yet: trying another address cannot run a request twice.
    const names = t.hostname === "localhost"
      ? ["localhost", "127.0.0.1", "::1"]
      : [t.hostname];
    let failure: unknown;
    for (const hostname of names) {
      try {
        const socket = t.secure
          ? await Deno.connectTls({
            hostname,
            port: t.port,
            alpnProtocols: ["http/1.1"],
            ...(this.#caCerts ? { caCerts: this.#caCerts } : {}),
          })
          : await Deno.connect({ hostname, port: t.port, signal });
        if (!t.secure) (socket as Deno.TcpConn).setNoDelay(true);
        return new Connection(socket, t.pool);
      } catch (e) {
        failure ??= e;
        if (signal.aborted || !(e instanceof Deno.errors.ConnectionRefused)) {
          break;
        }
      }
    }
    throw new ModelCallError(errorText(failure));
  }

  /** Takes back a connection whose answer was read to its end. */
  #release(c: Connection): void {
    if (this.#closed || c.dead) return c.destroy();
    let list = this.#idle.get(c.pool);
    if (!list) this.#idle.set(c.pool, list = []);
    c.rest(() => {
      const i = list.indexOf(c);
      if (i >= 0) list.splice(i, 1);
    });
    list.push(c);
  }

  #dropIdle(now: number): void {
    for (const list of this.#idle.values()) {
      for (let i = list.length - 1; i >= 0; i--) {
        const c = list[i];
        if (c.dead || now - c.idleSince >= this.#idleMs) {
          list.splice(i, 1);
          c.destroy();
        }
      }
    }
  }
}

/** The request head, with `body` behind it when given (one write). */
function requestBytes(
  t: Target,
  length: number,
  accept: string | null | undefined,
  body?: Uint8Array,
): Uint8Array {
  const head = `POST ${t.path} HTTP/1.1\r\nhost: ${t.host}\r\n` +
    `content-type: application/json\r\ncontent-length: ${length}\r\n` +
    `accept: ${safeValue(accept) ?? "*/*"}\r\naccept-encoding: identity\r\n` +
    `user-agent: edgeworker\r\n\r\n`;
  // The head is ASCII: the URL is encoded and `accept` checked.
  const out = new Uint8Array(head.length + (body?.byteLength ?? 0));
  encoder.encodeInto(head, out);
  if (body) out.set(body, head.length);
  return out;
}

/** A header value that cannot break the head (no CR, LF, NUL), else none. */
function safeValue(v: string | null | undefined): string | undefined {
  if (!v) return undefined;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === CR || c === LF || c === 0 || c > 0x7e) return undefined;
  }
  return v;
}

/** One socket to a model server, its read buffer and its state. */
class Connection {
  /** The pool it goes back to ({@linkcode Target.pool}). */
  readonly pool: string;
  idleSince = 0;
  dead = false;
  #socket: Deno.Conn;
  #buf = new Uint8Array(READ_BYTES);
  #start = 0;
  #end = 0;
  // A read issued while idle, taken over by the next answer.
  #pending: Promise<number | null> | null = null;
  #idle = false;
  #signal: AbortSignal | null = null;
  #onAbort = () => this.destroy();

  constructor(socket: Deno.Conn, pool: string) {
    this.#socket = socket;
    this.pool = pool;
  }

  /** Follows `signal` for the call about to start. */
  watch(signal: AbortSignal): void {
    this.#signal = signal;
    signal.addEventListener("abort", this.#onAbort);
  }

  #unwatch(): void {
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#signal = null;
  }

  /** Back in the pool: a pending read tells if the server closes it. */
  rest(onGone: () => void): void {
    this.#unwatch();
    this.#idle = true;
    this.idleSince = performance.now();
    this.#start = this.#end = 0;
    const read = this.#socket.read(this.#buf);
    this.#pending = read;
    read.then((n) => {
      // Anything while idle (EOF, an unasked 408): the connection is done.
      if (this.#idle && this.#pending === read) {
        if (n !== null) this.#end = n;
        this.dead = true;
        onGone();
        this.destroy();
      }
    }, () => {
      if (this.#idle) {
        this.dead = true;
        onGone();
      }
    });
  }

  /** Out of the pool, for a call. */
  use(): this {
    this.#idle = false;
    return this;
  }

  destroy(): void {
    this.dead = true;
    this.#unwatch();
    try {
      this.#socket.close();
    } catch { /* already closed */ }
  }

  async write(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.byteLength) {
      done += await this.#socket.write(bytes.subarray(done));
    }
  }

  /** Reads more bytes into the buffer; false at EOF. */
  async #fill(): Promise<boolean> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    let read = this.#pending;
    this.#pending = null;
    if (!read) {
      if (this.#end === this.#buf.byteLength) {
        if (this.#start > 0) {
          this.#buf.copyWithin(0, this.#start, this.#end);
          this.#end -= this.#start;
          this.#start = 0;
        } else {
          const bigger = new Uint8Array(this.#buf.byteLength * 2);
          bigger.set(this.#buf);
          this.#buf = bigger;
        }
      }
      read = this.#socket.read(this.#buf.subarray(this.#end));
    }
    const n = await read;
    if (n === null) return false;
    this.#end += n;
    return true;
  }

  /** Index just past the next line's LF from `from`, or -1. */
  #lineEnd(from: number): number {
    const i = this.#buf.indexOf(LF, from);
    return i < 0 || i >= this.#end ? -1 : i + 1;
  }

  /** Reads an answer's head (after any 1xx) and makes its answer. */
  async readAnswer(
    maxHead: number,
    release: (c: Connection) => void,
  ): Promise<ModelAnswer> {
    for (;;) {
      const head = await this.#readHead(maxHead);
      if (head.status >= 100 && head.status < 200 && head.status !== 101) {
        continue; // 100 Continue, 103 Early Hints: the answer follows
      }
      return new SocketAnswer(this, head, release);
    }
  }

  async #readHead(maxHead: number): Promise<Head> {
    let scanned = this.#start;
    for (;;) {
      // The head ends at an empty line (CRLF CRLF, or bare LF LF).
      let end = -1;
      for (let i = this.#lineEnd(scanned); i >= 0; i = this.#lineEnd(i)) {
        const lineStart = scanned;
        scanned = i;
        if (
          i - lineStart <= 2 &&
          (i - lineStart === 1 || this.#buf[lineStart] === CR)
        ) {
          end = i;
          break;
        }
      }
      if (end - this.#start > maxHead) {
        throw new ModelCallError(`answer head over ${maxHead} bytes`);
      }
      if (end >= 0) {
        const text = isomorphicDecode(this.#buf.subarray(this.#start, end));
        this.#start = end;
        return parseHead(text);
      }
      if (this.#end - this.#start > maxHead) {
        throw new ModelCallError(`answer head over ${maxHead} bytes`);
      }
      const started = this.#end > this.#start;
      if (!(await this.#fill())) {
        throw new ModelCallError(
          started
            ? "connection closed in the answer's head"
            : "connection closed before an answer",
        );
      }
    }
  }

  /** Reads more bytes into the buffer; false at EOF. */
  more(): Promise<boolean> {
    return this.#fill();
  }

  // The body's framing is parsed from what is buffered, synchronously: a
  // chunk that arrived whole costs one await (its read), not one per step.
  // Each `...Now` answers undefined when it needs bytes that have not come.

  /** Up to `max` buffered bytes, copied out; undefined when none are. */
  bufferedNow(max: number): Uint8Array | undefined {
    if (this.#start === this.#end) return undefined;
    const n = Math.min(max, this.#end - this.#start);
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  /** `n` bytes exactly, read straight into one buffer. */
  async exactly(n: number): Promise<Uint8Array<ArrayBuffer>> {
    const out = new Uint8Array(n);
    const have = Math.min(n, this.#end - this.#start);
    out.set(this.#buf.subarray(this.#start, this.#start + have));
    this.#start += have;
    let got = have;
    while (got < n) {
      const r = await this.#socket.read(out.subarray(got));
      if (r === null) throw new Error("connection closed mid-answer");
      got += r;
    }
    return out;
  }

  /** The next line (without CRLF), up to `max` bytes. */
  lineNow(max: number): string | undefined {
    const end = this.#lineEnd(this.#start);
    if (end < 0) {
      if (this.#end - this.#start > max) throw new Error("chunk line too long");
      return undefined;
    }
    let stop = end - 1;
    if (stop > this.#start && this.#buf[stop - 1] === CR) stop--;
    const text = isomorphicDecode(this.#buf.subarray(this.#start, stop));
    this.#start = end;
    return text;
  }

  /** Consumes an empty line (CRLF or LF); false when the bytes are not one. */
  emptyLineNow(): boolean | undefined {
    const have = this.#end - this.#start;
    const b = this.#buf;
    if (have >= 1 && b[this.#start] === LF) {
      this.#start += 1;
      return true;
    }
    if (have >= 2) {
      const ok = b[this.#start] === CR && b[this.#start + 1] === LF;
      if (ok) this.#start += 2;
      return ok;
    }
    if (have === 1 && b[this.#start] !== CR) return false;
    return undefined;
  }

  /**
   * The size of the next chunk, from its size line (hex digits, then
   * optional whitespace and extensions), parsed from the bytes.
   */
  chunkSizeNow(): number | undefined {
    const end = this.#lineEnd(this.#start);
    if (end < 0) {
      if (this.#end - this.#start > 4096) {
        throw new Error("chunk line too long");
      }
      return undefined;
    }
    const buf = this.#buf;
    let i = this.#start;
    let size = 0;
    for (; i < end; i++) {
      const d = hexValue(buf[i]);
      if (d < 0) break;
      size = size * 16 + d;
    }
    const digits = i - this.#start;
    while (buf[i] === 0x20 || buf[i] === 0x09) i++;
    const c = buf[i];
    const rest = c === 0x3b || c === LF || (c === CR && buf[i + 1] === LF);
    if (digits === 0 || digits > 12 || !rest) {
      const line = isomorphicDecode(buf.subarray(this.#start, end));
      throw new Error(`bad chunk size line ${JSON.stringify(line.trim())}`);
    }
    this.#start = end;
    return size;
  }

  /** Whether bytes past the answer are buffered (the server sent extra). */
  get leftover(): boolean {
    return this.#end > this.#start;
  }
}

interface Head {
  status: number;
  version: string;
  headers: HeaderList;
}

/** The status line and header fields of `text` (the head, a byte per character). */
function parseHead(text: string): Head {
  const lines = text.split(/\r?\n/);
  const m = /^HTTP\/(1\.[01]) (\d{3})(?: |$)/.exec(lines[0]);
  if (!m) {
    throw new ModelCallError(
      `the model server's answer is not HTTP/1: ${
        JSON.stringify(lines[0].slice(0, 60))
      }`,
    );
  }
  const pairs: [string, string][] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (line === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) {
      throw new ModelCallError(
        `malformed header line in the answer: ${
          JSON.stringify(line.slice(0, 60))
        }`,
      );
    }
    pairs.push([
      line.slice(0, colon).trim().toLowerCase(),
      line.slice(colon + 1).trim(),
    ]);
  }
  return {
    status: Number(m[2]),
    version: m[1],
    headers: new HeaderList(pairs),
  };
}

/** How the body of an answer with `head` ends (RFC 9112 6.3). */
function framingOf(head: Head): Framing {
  const s = head.status;
  if (s === 204 || s === 304 || (s >= 100 && s < 200)) return { kind: "none" };
  const te = head.headers.get("transfer-encoding");
  if (te !== null) {
    const last = te.split(",").at(-1)!.trim().toLowerCase();
    return last === "chunked" ? { kind: "chunked" } : { kind: "close" };
  }
  const cl = head.headers.get("content-length");
  if (cl !== null) {
    const values = new Set(cl.split(",").map((v) => v.trim()));
    const [only] = values;
    if (values.size !== 1 || !/^\d{1,15}$/.test(only)) {
      throw new ModelCallError(`invalid content-length ${JSON.stringify(cl)}`);
    }
    const left = Number(only);
    return left === 0 ? { kind: "none" } : { kind: "length", left };
  }
  return { kind: "close" };
}

/** Whether the connection may carry another request after this answer. */
function reusable(head: Head, framing: Framing): boolean {
  if (framing.kind === "close") return false;
  const connection = head.headers.get("connection")?.toLowerCase() ?? "";
  if (head.version === "1.0") return /\bkeep-alive\b/.test(connection);
  return !/\bclose\b/.test(connection);
}

const DECODABLE = new Set(["gzip", "x-gzip", "deflate"]);

/** An answer read from a {@linkcode Connection}. */
class SocketAnswer implements ModelAnswer {
  readonly status: number;
  readonly headers: HeaderList;
  readonly hasBody: boolean;
  #conn: Connection;
  #head: Head;
  #framing: Framing;
  #release: (c: Connection) => void;
  #taken = false;
  #encoding: string | undefined;

  constructor(conn: Connection, head: Head, release: (c: Connection) => void) {
    this.#conn = conn;
    this.#head = head;
    this.#release = release;
    this.status = head.status;
    this.headers = head.headers;
    this.#framing = framingOf(head);
    this.hasBody = this.#framing.kind !== "none";
    const coding = head.headers.get("content-encoding")?.trim().toLowerCase();
    if (coding && coding !== "identity") {
      if (!DECODABLE.has(coding)) {
        conn.destroy();
        throw new ModelCallError(
          `the model server answered in the ${coding} encoding, which the worker does not decode (it asks for identity)`,
        );
      }
      this.#encoding = coding;
    }
    if (!this.hasBody) this.#finish();
  }

  async bytes(): Promise<Uint8Array<ArrayBuffer>> {
    this.#claim();
    const f = this.#framing;
    // A length read whole is taken in one buffer; a large declared one
    // (a model server's word only) grows with what arrives instead.
    if (this.#encoding || f.kind !== "length" || f.left > ONE_BUFFER_BYTES) {
      if (f.kind === "none") return new Uint8Array(0);
      return await new Response(this.#body()).bytes();
    }
    try {
      const out = await this.#conn.exactly(f.left);
      f.left = 0;
      this.#finish();
      return out;
    } catch (e) {
      this.#conn.destroy();
      throw e;
    }
  }

  stream(watch?: StreamWatch): ReadableStream<Uint8Array> {
    this.#claim();
    if (this.#encoding && watch) return watchedStream(this.#body(), watch);
    return this.#body(watch);
  }

  /** The body, decoded when the model encoded it. */
  #body(watch?: StreamWatch): ReadableStream<Uint8Array> {
    const raw = this.#rawStream(watch);
    if (!this.#encoding) return raw;
    const format = this.#encoding === "deflate" ? "deflate" : "gzip";
    return raw.pipeThrough(
      new DecompressionStream(format) as unknown as ReadableWritablePair<
        Uint8Array,
        Uint8Array
      >,
    );
  }

  cancel(): Promise<void> {
    if (!this.#taken) {
      this.#taken = true;
      if (this.hasBody) this.#conn.destroy();
    }
    return Promise.resolve();
  }

  #claim(): void {
    if (this.#taken) throw new TypeError("the answer's body was already read");
    this.#taken = true;
  }

  /** The answer is read to its end: the connection goes back or closes. */
  #finish(): void {
    if (reusable(this.#head, this.#framing) && !this.#conn.leftover) {
      this.#release(this.#conn);
    } else this.#conn.destroy();
  }

  #rawStream(watch?: StreamWatch): ReadableStream<Uint8Array> {
    const conn = this.#conn;
    const f = this.#framing;
    if (f.kind === "none") {
      return new ReadableStream({
        start: (c) => {
          c.close();
          watch?.done();
        },
      });
    }
    let chunkLeft = 0;
    let afterData = false;
    let inTrailers = false;
    let ended = false;
    // The next piece of the body from what is buffered: bytes, null at its
    // end, undefined when more must be read first. A chunk goes out as soon
    // as its data is in; its CRLF is read with the next one, so a server
    // that writes it late delays nothing.
    const step = (): Uint8Array | null | undefined => {
      if (f.kind === "length") {
        if (f.left === 0) return null;
        const got = conn.bufferedNow(f.left);
        if (got) f.left -= got.byteLength;
        return got;
      }
      if (f.kind === "close") return conn.bufferedNow(Infinity);
      for (;;) {
        if (inTrailers) {
          // Trailers, up to the empty line: read and dropped.
          const t = conn.lineNow(8192);
          if (t === undefined) return undefined;
          if (t === "") return null;
          continue;
        }
        if (chunkLeft > 0) {
          const got = conn.bufferedNow(chunkLeft);
          if (!got) return undefined;
          chunkLeft -= got.byteLength;
          if (chunkLeft === 0) afterData = true;
          return got;
        }
        if (afterData) {
          const empty = conn.emptyLineNow();
          if (empty === undefined) return undefined;
          if (!empty) throw new Error("chunk data longer than its size");
          afterData = false;
        }
        const size = conn.chunkSizeNow();
        if (size === undefined) return undefined;
        chunkLeft = size;
        inTrailers = size === 0;
      }
    };
    const cutShort = () =>
      new Error(
        chunkLeft > 0
          ? "connection closed mid-chunk"
          : inTrailers
          ? "connection closed in trailers"
          : "connection closed mid-answer",
      );
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        watch?.pulling();
        try {
          let chunk = step();
          while (chunk === undefined) {
            if (await conn.more()) chunk = step();
            else if (f.kind === "close") chunk = null;
            else throw cutShort();
          }
          if (chunk === null) {
            ended = true;
            this.#finish();
            controller.close();
            watch?.done();
          } else {
            watch?.chunk();
            controller.enqueue(chunk);
          }
        } catch (e) {
          ended = true;
          conn.destroy();
          watch?.failed(e);
          controller.error(e);
        }
      },
      cancel: () => {
        if (!ended) conn.destroy();
        ended = true;
        watch?.cancelled();
      },
    }, { highWaterMark: 0 });
  }
}
