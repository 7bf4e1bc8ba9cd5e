/**
 * Resumable streams: a streamed answer that outlives its client's
 * connection for a while. The model's stream is read into a bounded replay
 * buffer; the connection reads from that buffer. When the connection drops
 * the model call goes on for `seconds` more; a client that comes back with
 * the stream's id and its byte offset gets what it missed, then the live
 * rest, exactly once and in order. Nobody back in time: the model call is
 * cancelled and recorded as cancelled, as without resume.
 *
 * Bounds: each stream keeps at most `streamBytes` bytes, all streams
 * together at most `totalBytes`. While a client reads, a stream keeps its
 * last `streamBytes / 2` bytes (what a connection that dies may have lost
 * in flight), older ones making room for new ones; while no client reads,
 * nothing is dropped, and the other half takes what the model sends
 * meanwhile. When a chunk does not fit, the stream ends with an error event
 * (the overflow) and the model call is cancelled. Ended streams that no
 * client reads give their bytes up first when the total is reached.
 *
 * While a client is attached the model is read only as fast as the client
 * takes the chunks (as the plain relay does); each model chunk goes out as
 * one chunk (SSE streams get `id:` lines at event boundaries, see
 * `sse_ids.ts`).
 *
 * Longer than most modules: the stream's buffer, its reader and its
 * connections share one state machine.
 *
 * @module
 */
import { DEFAULT_RESUME_BUFFER } from "../config/schemas.ts";
import { jsonEqual } from "./sessions.ts";
import { idLine, SseIdInjector } from "./sse_ids.ts";
import { CLIENT_CLOSED_REQUEST, type RequestTicket } from "./ticket.ts";

/** Response header naming a resumable stream. */
export const STREAM_ID_HEADER = "x-edgeworker-stream-id";

/** Response header of a resumed stream: the offset its body starts at. */
export const RESUME_OFFSET_HEADER = "x-edgeworker-resume-offset";

/** The `type` of the error event that ends an overflowed stream. */
export const OVERFLOW_ERROR_TYPE = "resume_buffer_overflow";

/** Byte limits of the replay buffers. */
export interface ResumeLimits {
  /** Bytes one stream keeps (the last ones). @default {2097152} */
  streamBytes: number;
  /** Bytes all streams keep together. @default {67108864} */
  totalBytes: number;
}

/** A streamed answer that becomes resumable. */
export interface ResumableStart {
  /** The request's ticket; the stream ends it exactly once. */
  ticket: RequestTicket;
  /** The model's body. */
  body: ReadableStream<Uint8Array>;
  status: number;
  /** Headers of the answer; the stream id is added. */
  headers: Headers;
  /** The request's `auth_data`, which a resume must present again. */
  authData: unknown;
  /** Seconds the model call waits for a client that left. */
  seconds: number;
}

/** Figures of the replay buffers. */
export interface ResumeStats {
  /** Streams that may be resumed now. */
  streams: number;
  /** Bytes kept now. */
  bufferedBytes: number;
  /** Most bytes kept at once. */
  peakBytes: number;
  /** Streams resumed (a connection attached again). */
  resumes: number;
  /** Streams ended by the buffer limit while their client was away. */
  overflows: number;
  /** Model calls cancelled because no client came back in time. */
  expired: number;
}

/** Where a resume starts, or why it cannot. */
export type ResumePoint =
  | { ok: true; offset: number }
  | { ok: false; status: 410 | 416 | 422 | 502; error: string };

type State = "live" | "done" | "failed" | "overflowed" | "expired";

interface Consumer {
  offset: number;
  gone: boolean;
  controller?: ReadableStreamDefaultController<Uint8Array>;
  wake?: () => void;
  unlisten: () => void;
}

const encoder = new TextEncoder();

/** One resumable stream (see the module note). */
export class ResumableStream {
  /** Its id (the {@linkcode STREAM_ID_HEADER}). */
  readonly id: string = crypto.randomUUID();
  /** The answer's status. */
  readonly status: number;
  /** The answer's headers, the id included. */
  readonly headers: Headers;
  #registry: ResumeRegistry;
  #ticket: RequestTicket;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #auth: unknown;
  #ms: number;
  #sse: SseIdInjector | undefined;
  #lastByte = -1;
  // The window kept: chunks[head..] start at offsets[head..].
  #chunks: Uint8Array[] = [];
  #offsets: number[] = [];
  #head = 0;
  #start = 0;
  #end = 0;
  #retained = 0;
  // A chunk handed to a caught-up client without being kept (no room).
  #passing: Uint8Array | undefined;
  // After the buffer: the overflow's error event (a fixed, small size).
  #tail: Uint8Array | undefined;
  #state: State = "live";
  #failure = "";
  #reading = false;
  #consumer: Consumer | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** Use {@linkcode ResumeRegistry.start}. */
  constructor(registry: ResumeRegistry, start: ResumableStart) {
    this.#registry = registry;
    this.#ticket = start.ticket;
    this.#reader = start.body.getReader();
    this.#auth = start.authData;
    this.#ms = start.seconds * 1000;
    this.status = start.status;
    this.headers = start.headers;
    this.headers.set(STREAM_ID_HEADER, this.id);
    const type = (start.headers.get("content-type") ?? "").toLowerCase();
    if (type.startsWith("text/event-stream")) this.#sse = new SseIdInjector();
  }

  /** Whether `auth` is the `auth_data` the stream's request carried. */
  authorize(auth: unknown): boolean {
    return jsonEqual(this.#auth, auth);
  }

  /**
   * Where a resume at byte `offset`, or after the event `lastEventId`
   * names, starts (`offset` wins; neither: the start of the stream).
   */
  resumePoint(
    offset: number | undefined,
    lastEventId: string | null,
  ): ResumePoint {
    if (offset === undefined && lastEventId !== null) {
      const after = this.#afterEvent(lastEventId.trim());
      if (!after.ok) return after;
      offset = after.offset;
    }
    offset ??= 0;
    if (offset < this.#start) {
      return {
        ok: false,
        status: 410,
        error:
          `bytes before offset ${this.#start} are no longer buffered (asked from ${offset})`,
      };
    }
    const total = this.#end + (this.#tail?.length ?? 0);
    if (offset > total) {
      return {
        ok: false,
        status: 416,
        error: `offset ${offset} is past the ${total} bytes sent so far`,
      };
    }
    if (this.#state === "failed" && offset >= this.#end) {
      return { ok: false, status: 502, error: this.#failure };
    }
    return { ok: true, offset };
  }

  /**
   * A connection's body from `offset` on: the buffered bytes, then the
   * live rest. A connection already reading is cut off (the newest
   * resume wins: the old one is usually dead without knowing it). `signal`
   * says when this connection's client left.
   */
  attach(offset: number, signal?: AbortSignal): ReadableStream<Uint8Array> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#consumer) this.#cutOff(this.#consumer);
    const onGone = () => this.#detach(c);
    const c: Consumer = {
      offset,
      gone: false,
      unlisten: () => signal?.removeEventListener("abort", onGone),
    };
    this.#consumer = c;
    signal?.addEventListener("abort", onGone, { once: true });
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        c.controller = controller;
      },
      pull: (controller) => this.#pull(c, controller),
      cancel: () => this.#detach(c),
    }, { highWaterMark: 0 });
    if (signal?.aborted) this.#detach(c);
    return body;
  }

  /** @internal Ends the stream at shutdown (the model call too if live). */
  stop(why: string): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#state === "live") {
      this.#state = "failed";
      this.#failure = why;
      this.#ticket.end("cancelled", CLIENT_CLOSED_REQUEST, why);
      this.#cancelModel(why);
    }
    const c = this.#consumer;
    if (c) this.#cutOff(c);
  }

  /** @internal Frees the whole buffer if no client reads it and the model call ended. */
  reclaim(): number {
    if (this.#state === "live" || this.#consumer) return 0;
    const freed = this.#retained;
    this.#registry.forget(this);
    return freed;
  }

  /** @internal Bytes kept. */
  get retained(): number {
    return this.#retained;
  }

  async #pull(
    c: Consumer,
    controller: ReadableStreamDefaultController<Uint8Array>,
  ): Promise<void> {
    while (!c.gone) {
      const piece = this.#slice(c.offset);
      if (piece) {
        c.offset += piece.length;
        controller.enqueue(piece);
        return;
      }
      if (this.#state === "live") {
        await new Promise<void>((resolve) => {
          c.wake = resolve;
          this.#read();
        });
        c.wake = undefined;
        continue;
      }
      this.#release(c);
      if (this.#state === "failed") controller.error(new Error(this.#failure));
      else controller.close();
      return;
    }
  }

  // The bytes from `offset` to the end of the chunk holding it.
  #slice(offset: number): Uint8Array | undefined {
    const passing = this.#passing;
    if (passing && offset === this.#end - passing.length) {
      this.#passing = undefined;
      this.#start = this.#end;
      return passing;
    }
    if (offset < this.#end) {
      const i = this.#chunkAt(offset);
      return this.#chunks[i].subarray(offset - this.#offsets[i]);
    }
    const tail = this.#tail;
    const at = offset - this.#end;
    return tail && at < tail.length ? tail.subarray(at) : undefined;
  }

  #chunkAt(offset: number): number {
    let lo = this.#head;
    let hi = this.#chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#offsets[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  #byteAt(offset: number): number {
    const i = this.#chunkAt(offset);
    return this.#chunks[i][offset - this.#offsets[i]];
  }

  // Last-Event-ID names the position of an `id:` line: resume after the
  // blank line that follows it.
  #afterEvent(id: string): ResumePoint {
    if (!this.#sse) {
      return {
        ok: false,
        status: 422,
        error: "Last-Event-ID: this stream is not SSE; give offset instead",
      };
    }
    if (!/^\d{1,15}$/.test(id)) {
      return {
        ok: false,
        status: 422,
        error: `Last-Event-ID: expected an id the stream sent, got "${id}"`,
      };
    }
    const at = Number(id);
    if (at < this.#start) {
      return {
        ok: false,
        status: 410,
        error: `the event at ${at} is no longer buffered`,
      };
    }
    const line = idLine(at);
    let end = at + line.length;
    const matches = end < this.#end &&
      line.every((b, i) => this.#byteAt(at + i) === b);
    if (!matches) {
      return {
        ok: false,
        status: 422,
        error: `Last-Event-ID: ${id} is not an event id of this stream`,
      };
    }
    // The blank line: CR LF, LF or CR.
    if (this.#byteAt(end) === 0x0d && end + 1 < this.#end) {
      end += this.#byteAt(end + 1) === 0x0a ? 2 : 1;
    } else end += 1;
    return { ok: true, offset: end };
  }

  // One model read at a time.
  #read(): void {
    if (this.#reading || this.#state !== "live") return;
    this.#reading = true;
    this.#reader.read().then(
      (r) => this.#onRead(r),
      (e) => this.#onError(e),
    );
  }

  #onRead(r: ReadableStreamReadResult<Uint8Array>): void {
    this.#reading = false;
    if (this.#state !== "live") return;
    if (r.done) {
      this.#state = "done";
      this.#ticket.end("success", this.status);
      this.#wake();
      if (!this.#consumer) this.#idle();
      return;
    }
    this.#ticket.chunk();
    const chunk = this.#sse ? this.#sse.inject(r.value, this.#end) : r.value;
    if (!this.#store(chunk)) {
      this.#overflow();
      return;
    }
    this.#wake();
    // No client: the model keeps going into the buffer.
    if (!this.#consumer) this.#read();
  }

  #onError(e: unknown): void {
    this.#reading = false;
    if (this.#state !== "live") return;
    const ticket = this.#ticket;
    this.#state = "failed";
    if (ticket.signal.aborted) {
      ticket.endAborted("while streaming");
      this.#failure = ticket.timeout?.message ?? "request cancelled";
    } else {
      this.#failure = `model stream broke: ${
        e instanceof Error ? e.message : String(e)
      }`;
      ticket.end("error", this.status, this.#failure);
    }
    this.#wake();
    if (!this.#consumer) this.#idle();
  }

  // Keeps `chunk` in the window; false when it cannot (the overflow).
  #store(chunk: Uint8Array): boolean {
    // A chunk handed on without room whose client left before taking it
    // is lost: a resume from before its end gets 410.
    if (this.#passing) {
      this.#passing = undefined;
      this.#start = this.#end;
    }
    const n = chunk.length;
    const limits = this.#registry.limits;
    // A reading client needs only the last half; the rest is for a drop.
    const keep = this.#consumer ? limits.streamBytes >> 1 : limits.streamBytes;
    while (this.#retained + n > keep && this.#evictOne());
    let fits = this.#retained + n <= limits.streamBytes;
    while (fits && !this.#registry.reserve(n, this)) {
      if (!this.#evictOne()) fits = false;
    }
    if (!fits) {
      // A client that has everything gets the chunk without it being kept.
      const c = this.#consumer;
      if (!c || c.offset !== this.#end) return false;
      while (this.#evictOne());
      this.#passing = chunk;
      this.#start = this.#end;
      this.#end += n;
      return true;
    }
    this.#chunks.push(chunk);
    this.#offsets.push(this.#end);
    this.#end += n;
    this.#retained += n;
    if (n > 0) this.#lastByte = chunk[n - 1];
    return true;
  }

  // Drops the oldest chunk if the client reading has passed it; with no
  // client, nothing goes (it may need any of it).
  #evictOne(): boolean {
    if (this.#head >= this.#chunks.length) return false;
    const floor = this.#consumer?.offset ?? this.#start;
    const chunk = this.#chunks[this.#head];
    const chunkEnd = this.#offsets[this.#head] + chunk.length;
    if (chunkEnd > floor) return false;
    this.#head++;
    this.#start = chunkEnd;
    this.#retained -= chunk.length;
    this.#registry.release(chunk.length);
    if (this.#head > 64 && this.#head * 2 > this.#chunks.length) {
      this.#chunks.splice(0, this.#head);
      this.#offsets.splice(0, this.#head);
      this.#head = 0;
    }
    return true;
  }

  #overflow(): void {
    const limits = this.#registry.limits;
    const why =
      `resume buffer full (${limits.streamBytes} bytes per stream, ${limits.totalBytes} in all) while the client was away`;
    this.#tail = encoder.encode(this.#errorEvent(why));
    this.#state = "overflowed";
    this.#registry.noteOverflow();
    const away = this.#consumer === undefined;
    if (away) this.#ticket.end("cancelled", CLIENT_CLOSED_REQUEST, why);
    else this.#ticket.end("error", this.status, why);
    this.#cancelModel(why);
    this.#wake();
    if (away) this.#idle();
  }

  #errorEvent(message: string): string {
    const body = JSON.stringify({
      error: { message, type: OVERFLOW_ERROR_TYPE },
    });
    if (this.#sse) {
      return `${this.#sse.closing()}event: error\ndata: ${body}\n\n`;
    }
    const newline = this.#lastByte === -1 || this.#lastByte === 0x0a;
    return `${newline ? "" : "\n"}${body}\n`;
  }

  #cancelModel(why: string): void {
    this.#ticket.cancel(why);
    this.#reader.cancel(why).catch(() => {});
  }

  #wake(): void {
    this.#consumer?.wake?.();
  }

  // The client left: the model call goes on, the buffer waits.
  #detach(c: Consumer): void {
    if (c.gone) return;
    c.gone = true;
    c.unlisten();
    c.wake?.();
    if (this.#consumer !== c) return;
    this.#consumer = undefined;
    this.#idle();
    this.#read();
  }

  // The client read the whole stream.
  #release(c: Consumer): void {
    c.gone = true;
    c.unlisten();
    if (this.#consumer !== c) return;
    this.#consumer = undefined;
    this.#idle();
  }

  #cutOff(c: Consumer): void {
    c.gone = true;
    c.unlisten();
    c.wake?.();
    if (this.#consumer === c) this.#consumer = undefined;
    try {
      c.controller?.error(new Error("stream resumed on another connection"));
    } catch { /* already closed */ }
  }

  // No client: wait `seconds` for one, then give up.
  #idle(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#expire(), this.#ms);
  }

  #expire(): void {
    this.#timer = undefined;
    if (this.#consumer) return;
    if (this.#state === "live") {
      this.#state = "expired";
      const why = `client did not resume within ${this.#ms / 1000} s`;
      this.#ticket.end(
        "cancelled",
        CLIENT_CLOSED_REQUEST,
        `client disconnected; ${why}`,
      );
      this.#cancelModel(why);
      this.#registry.noteExpired();
    }
    this.#registry.forget(this);
  }

  /** @internal Drops every byte (the stream leaves the registry). */
  dropAll(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#registry.release(this.#retained);
    this.#retained = 0;
    this.#chunks = [];
    this.#offsets = [];
    this.#head = 0;
    this.#start = this.#end;
  }
}

/**
 * Every resumable stream of a worker, by id, and the byte budget they
 * share.
 *
 * @example
 * ```ts ignore
 * const registry = new ResumeRegistry({ streamBytes: 1 << 20 });
 * const body = registry.start({ ticket, body, status, headers, authData, seconds: 30 });
 * // later, POST /resume/<id>:
 * const stream = registry.get(id);
 * ```
 */
export class ResumeRegistry {
  /** The byte limits. */
  readonly limits: ResumeLimits;
  #streams = new Map<string, ResumableStream>();
  #bytes = 0;
  #peak = 0;
  #resumes = 0;
  #overflows = 0;
  #expired = 0;

  /** Creates the registry; unset limits take the config's defaults. */
  constructor(limits: Partial<ResumeLimits> = {}) {
    this.limits = { ...DEFAULT_RESUME_BUFFER, ...limits };
  }

  /**
   * Makes a streamed answer resumable: the ticket stops cancelling on a
   * client that leaves (the stream decides), and the first connection's
   * body is returned.
   */
  start(start: ResumableStart): ReadableStream<Uint8Array> {
    const stream = new ResumableStream(this, start);
    this.#streams.set(stream.id, stream);
    return stream.attach(0, start.ticket.releaseClient());
  }

  /** The stream of `id`, while it may be resumed. */
  get(id: string): ResumableStream | undefined {
    return this.#streams.get(id);
  }

  /** Attaches a resuming connection (counted as a resume). */
  resume(
    stream: ResumableStream,
    offset: number,
    signal?: AbortSignal,
  ): ReadableStream<Uint8Array> {
    this.#resumes++;
    return stream.attach(offset, signal);
  }

  /** The figures of the buffers. */
  get stats(): ResumeStats {
    return {
      streams: this.#streams.size,
      bufferedBytes: this.#bytes,
      peakBytes: this.#peak,
      resumes: this.#resumes,
      overflows: this.#overflows,
      expired: this.#expired,
    };
  }

  /** Ends every stream (shutdown): live model calls are cancelled. */
  close(): void {
    for (const s of [...this.#streams.values()]) {
      s.stop("worker stopping");
      this.forget(s);
    }
  }

  /**
   * @internal Takes `n` bytes from the total budget, first freeing streams
   * that ended and that no client reads. False when they do not fit.
   */
  reserve(n: number, by: ResumableStream): boolean {
    if (this.#bytes + n > this.limits.totalBytes) {
      for (const s of this.#streams.values()) {
        if (s !== by) s.reclaim();
        if (this.#bytes + n <= this.limits.totalBytes) break;
      }
    }
    if (this.#bytes + n > this.limits.totalBytes) return false;
    this.#bytes += n;
    if (this.#bytes > this.#peak) this.#peak = this.#bytes;
    return true;
  }

  /** @internal Gives `n` bytes back. */
  release(n: number): void {
    this.#bytes -= n;
  }

  /** @internal Removes a stream and its bytes. */
  forget(stream: ResumableStream): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    stream.dropAll();
  }

  /** @internal */
  noteOverflow(): void {
    this.#overflows++;
  }

  /** @internal */
  noteExpired(): void {
    this.#expired++;
  }
}
