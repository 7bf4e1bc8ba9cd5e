/**
 * The request ticket: one object owns an admitted request's accounting,
 * its ledger record, its queue slot, its place in a session and its abort
 * wiring, so that however the request ends (answer, client gone, model
 * error, timeout, shutdown) it ends exactly once and frees what it held.
 *
 * Longer than most modules: the ticket and the office that issues it share private wiring (tracking, the deadline sweep, the client watch).
 *
 * The ticket also measures the worker's own cost with `performance.now()`
 * marks (no timer, no closure): arrival (the handler starts; Deno's HTTP
 * parsing before it is not visible to JS), the slot, `fetch()` called
 * (when its bytes reach the socket is not visible either), the model's
 * answer (fetch resolved: its headers), Deno's first pull of the relayed
 * stream (the client's response has been handed on), and each chunk read
 * and handed over. Whatever Deno does after a chunk is enqueued (writing
 * it to the socket) is not visible: the figures are the JS side of the
 * worker, a lower bound of what a client sees. Each answer's first
 * byte also feeds the handler's adaptive slot count.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { SlotQueue } from "./admission.ts";
import type { ClientWatch } from "./client_gone.ts";
import { Deadlines, RequestTimeout, type Watched } from "./deadlines.ts";
import type {
  Ledger,
  RequestInfo,
  RequestOutcome,
  RequestRecord,
} from "./ledger.ts";

const log = getLogger(["edgeworker", "stall"]);

/** Status recorded when the client went away (never delivered). */
export const CLIENT_CLOSED_REQUEST = 499;

/** A handler's limits in seconds; null means none. */
export interface RequestLimits {
  /** Seconds a request may wait for a slot after admission. */
  maxQueueTime: number | null;
  /** Seconds from sending the request until the model's answer starts. */
  firstByte: number | null;
  /** Seconds without a byte from the model once its answer started. */
  idle: number | null;
  /** Seconds from sending the request until its answer ended. */
  total: number | null;
}

/** Where an admitted request waits and what it may be part of. */
export interface TicketPlace {
  /** The queue it takes a slot of, or null when it runs at once. */
  queue: SlotQueue | null;
  limits: RequestLimits;
  /** The session's set of in-flight requests, aborted when it closes. */
  session?: Set<AbortController>;
}

type Phase = "queued" | "sent" | "answering" | "ended";

/**
 * One admitted request. `enter()` → `sent()` → `answering()` → `end()`;
 * `end()` is the only way out and counts once, whatever calls it first.
 */
export class RequestTicket implements Watched {
  /** The ledger record (status, timings, outcome). */
  readonly record: RequestRecord;
  #abort = new AbortController();
  #office: Admission;
  #place: TicketPlace;
  #phase: Phase = "queued";
  #enteredAt: number;
  #sentAt = 0;
  #lastByteAt = 0;
  // Chunks counted at the last sweep: the sweep, not each chunk, reads the clock.
  #sweptChunks = 0;
  // Counted in the office's stalled streams now.
  #stalled = false;
  // performance.now() marks of the overhead figures (see the module note).
  #arrivedAt: number;
  #queuedAt = 0;
  #slotAt = 0;
  #sentMono = 0;
  #answeredAt = 0;
  #answerStatus = 0;
  #pulledAt = 0;
  #handedAt = 0;
  #inFlightAtSend = 0;
  #release: () => void = () => {};
  #clientSignal: AbortSignal;
  #onClientGone = () => this.cancel("client disconnected");
  #unwatch: (() => void) | undefined;

  /** Opens the record; use {@linkcode Admission.enter}. */
  constructor(
    office: Admission,
    info: RequestInfo,
    place: TicketPlace,
    clientSignal: AbortSignal,
    remote: Deno.Addr | undefined,
    arrivedAt: number,
  ) {
    this.#arrivedAt = arrivedAt;
    this.#office = office;
    this.#place = place;
    this.#clientSignal = clientSignal;
    this.record = office.ledger.open(info);
    this.#enteredAt = office.deadlines.now();
    if (clientSignal.aborted) this.cancel("client disconnected");
    else clientSignal.addEventListener("abort", this.#onClientGone);
    // The runtime misses a client that leaves after sending a large body.
    this.#unwatch = office.clientWatch?.watch(remote, this.#onClientGone);
    place.session?.add(this.#abort);
    office.track(this);
    if (hasDeadline(place) || office.stall) office.deadlines.watch(this);
  }

  /** Aborted when the request must stop: client gone, timeout, shutdown. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** The controller a session closes the request with. */
  get controller(): AbortController {
    return this.#abort;
  }

  /** The timeout that stopped the request, if one did. */
  get timeout(): RequestTimeout | undefined {
    const reason = this.#abort.signal.reason;
    return reason instanceof RequestTimeout ? reason : undefined;
  }

  /** Whether the request has ended. */
  get ended(): boolean {
    return this.#phase === "ended";
  }

  /**
   * Waits for a queue slot. False when the request ended while waiting
   * (client gone, queue timeout, shutdown): it is already recorded.
   */
  async queue(): Promise<boolean> {
    const queue = this.#place.queue;
    if (queue && !this.ended) {
      this.#queuedAt = performance.now();
      try {
        this.#release = await queue.acquire(this.signal);
      } catch {
        this.#endAborted("while queued");
        return false;
      }
      this.#slotAt = performance.now();
      this.#inFlightAtSend = queue.active;
      if (this.ended) {
        this.#release();
        return false;
      }
    }
    return !this.#endIfAborted("while queued");
  }

  /** The request is being sent to the model server. */
  sent(): void {
    if (this.ended) return;
    this.#phase = "sent";
    this.#sentAt = this.#office.deadlines.now();
    const now = this.#sentMono = performance.now();
    const r = this.record;
    const queued = this.#slotAt - this.#queuedAt;
    if (this.#place.queue) r.queueWaitMs = queued;
    r.beforeSendMs = Math.max(0, now - this.#arrivedAt - queued);
    this.#office.ledger.start(r);
  }

  /**
   * The model server answered with `status` (its fetch resolved). An
   * "overloaded" answer (429, 503) cuts an adaptive slot count.
   */
  modelAnswered(status: number): void {
    this.#answeredAt = performance.now();
    this.#answerStatus = status;
    if (status === 429 || status === 503) this.#place.queue?.overloaded();
  }

  /** The model's answer started (headers or a first byte arrived). */
  answering(): void {
    if (this.#phase !== "sent") return;
    this.#phase = "answering";
    this.#lastByteAt = this.#office.deadlines.now();
  }

  /**
   * The client's stream asks for the next chunk: after the first chunk,
   * how long the connection took to take the last one is noted.
   */
  pulling(): void {
    const now = performance.now();
    if (this.record.chunks === 0) {
      this.#pulledAt ||= now;
      return;
    }
    const gap = now - this.#handedAt;
    if (gap > this.record.maxChunkGapMs) this.record.maxChunkGapMs = gap;
  }

  /** A chunk of the answer reached the client. */
  chunk(): void {
    const now = performance.now();
    this.#handedAt = now;
    if (this.record.chunks++ === 0) this.#firstChunk(now);
  }

  // The first byte: the worker's share of it, and the model's for the limit.
  #firstChunk(now: number): void {
    const r = this.record;
    r.firstByteAt = Date.now();
    // From here Deno writes the answer and sees the client leave itself;
    // the connection tables need not be read for this request any more.
    this.#unwatch?.();
    this.#unwatch = undefined;
    if (this.#answeredAt === 0) return;
    // A stream: the answer's way to the client (until Deno's first pull);
    // waiting for the model's first chunk after it is the model's time.
    // An answer read whole: until it is handed on, reading it included.
    const overhead = Math.max(
      0,
      (this.#pulledAt || now) - this.#answeredAt,
    );
    r.firstByteOverheadMs = overhead;
    const s = this.#answerStatus;
    if (s >= 200 && s < 300) {
      this.#place.queue?.observe(
        now - this.#sentMono - overhead,
        this.#inFlightAtSend,
      );
    }
  }

  /**
   * Stops watching the client for the caller (a resumable stream outlives
   * its connection): leaving no longer cancels the request. Returns the
   * client's signal, which still says when it left.
   */
  releaseClient(): AbortSignal {
    this.#clientSignal.removeEventListener("abort", this.#onClientGone);
    this.#unwatch?.();
    this.#unwatch = undefined;
    return this.#clientSignal;
  }

  /** Stops the request; its outcome is decided by whoever ends it. */
  cancel(why: string): void {
    if (!this.#abort.signal.aborted) this.#abort.abort(new Error(why));
  }

  /**
   * Ends the request with its outcome; only the first call counts. The
   * slot and the session place are freed even if a ledger listener throws.
   */
  end(outcome: RequestOutcome, status: number, detail?: string): boolean {
    return this.#settle(outcome, status, detail);
  }

  /**
   * Ends an aborted request as its reason says: a timeout is an error (a
   * queue timeout a rejection), anything else a cancel. Returns the status.
   */
  endAborted(detail: string): number {
    return this.#endAborted(detail);
  }

  /** @internal Called by the sweep with the monotonic time. */
  check(now: number): boolean {
    if (this.ended) return false;
    if (this.record.chunks !== this.#sweptChunks) {
      this.#sweptChunks = this.record.chunks;
      this.#lastByteAt = now;
    }
    const expired = this.#stallCheck(now) ?? this.#expiredLimit(now);
    if (!expired) return true;
    this.#abort.abort(expired);
    return false;
  }

  // Flags (or un-flags) a quiet answer; the stall abort when that is on.
  #stallCheck(now: number): RequestTimeout | undefined {
    const stall = this.#office.stall;
    if (!stall || this.#phase !== "answering") return undefined;
    const quiet = now - this.#lastByteAt >= stall.seconds * 1000;
    if (quiet !== this.#stalled) this.#markStalled(quiet, stall.seconds);
    return quiet && stall.abort
      ? new RequestTimeout("stall", stall.seconds)
      : undefined;
  }

  #expiredLimit(now: number): RequestTimeout | undefined {
    const limits = this.#place.limits;
    const over = (since: number, seconds: number | null) =>
      seconds !== null && now - since >= seconds * 1000;
    if (this.#phase === "queued") {
      return over(this.#enteredAt, limits.maxQueueTime)
        ? new RequestTimeout("queue", limits.maxQueueTime!)
        : undefined;
    }
    if (over(this.#sentAt, limits.total)) {
      return new RequestTimeout("total", limits.total!);
    }
    if (this.#phase === "sent" && over(this.#sentAt, limits.firstByte)) {
      return new RequestTimeout("first_byte", limits.firstByte!);
    }
    if (this.#phase === "answering" && over(this.#lastByteAt, limits.idle)) {
      return new RequestTimeout("idle", limits.idle!);
    }
    return undefined;
  }

  #markStalled(stalled: boolean, seconds: number): void {
    this.#stalled = stalled;
    this.#office.countStalled(stalled ? 1 : -1);
    if (stalled) {
      log.warn(
        "Stream of {route} stalled: no byte from the model for {s} s{abort}",
        {
          route: this.record.route,
          s: seconds,
          abort: this.#office.stall?.abort ? " (aborted)" : "",
        },
      );
    }
  }

  #endIfAborted(detail: string): boolean {
    if (!this.signal.aborted) return false;
    this.#endAborted(detail);
    return true;
  }

  #endAborted(detail: string): number {
    const timeout = this.timeout;
    if (timeout?.kind === "queue") {
      this.#settle("expired", 429, timeout.message);
      return 429;
    }
    if (timeout) {
      if (timeout.kind === "first_byte") this.#place.queue?.overloaded();
      this.end("error", 504, `${timeout.message} ${detail}`);
      return 504;
    }
    const why = this.signal.reason instanceof Error
      ? this.signal.reason.message
      : "request cancelled";
    this.end("cancelled", CLIENT_CLOSED_REQUEST, `${why} ${detail}`);
    return CLIENT_CLOSED_REQUEST;
  }

  // The one way out: records the outcome once; frees the slot and the
  // session place even if a ledger listener throws.
  #settle(
    outcome: RequestOutcome | "expired",
    status: number,
    detail: string | undefined,
  ): boolean {
    if (this.ended) return false;
    this.#phase = "ended";
    const ledger = this.#office.ledger;
    try {
      return outcome === "expired"
        ? ledger.expire(this.record, status, detail ?? "")
        : ledger.finish(this.record, outcome, status, detail);
    } finally {
      this.#free();
    }
  }

  #free(): void {
    if (this.#stalled) this.#markStalled(false, 0);
    this.#release();
    this.#clientSignal.removeEventListener("abort", this.#onClientGone);
    this.#unwatch?.();
    this.#place.session?.delete(this.#abort);
    this.#office.deadlines.unwatch(this);
    this.#office.untrack(this);
  }
}

function hasDeadline(place: TicketPlace): boolean {
  const l = place.limits;
  return l.firstByte !== null || l.idle !== null || l.total !== null ||
    (place.queue !== null && l.maxQueueTime !== null);
}

/**
 * The stall detector: an answer under way that relays no byte for
 * `seconds` is flagged (and aborted with a recorded error when `abort`).
 */
export interface StallRule {
  seconds: number;
  abort: boolean;
}

/** Stall figures of {@linkcode Admission.stalls}. */
export interface StallCounts {
  /** Answers stalled now. */
  now: number;
  /** Answers that stalled since start. */
  total: number;
  /** Of those, aborted by the detector. */
  aborted: number;
}

/** Options of {@linkcode Admission}. */
export interface AdmissionOptions {
  ledger: Ledger;
  /** The stall detector; none when absent. */
  stall?: StallRule;
  /** The sweep of every ticket's deadlines; one is made when absent. */
  deadlines?: Deadlines;
  /** Notices clients that leave where `request.signal` cannot. */
  clientWatch?: ClientWatch;
}

/**
 * Issues tickets: every admitted request enters here and is accounted for
 * by its ticket until it ends. Also stops every request at shutdown.
 */
export class Admission {
  /** The ledger every ticket records into. */
  readonly ledger: Ledger;
  /** The sweep that expires tickets. */
  readonly deadlines: Deadlines;
  /** The kernel's view of client connections, where available. */
  readonly clientWatch: ClientWatch | undefined;
  /** The stall detector in force, if any. */
  readonly stall: StallRule | undefined;
  #open = new Set<RequestTicket>();
  #stalls: StallCounts = { now: 0, total: 0, aborted: 0 };

  /** Creates the office. */
  constructor(options: AdmissionOptions) {
    this.ledger = options.ledger;
    this.stall = options.stall;
    this.deadlines = options.deadlines ?? new Deadlines();
    this.clientWatch = options.clientWatch;
  }

  /**
   * Admits a request: opens its record and returns its ticket. `arrivedAt`
   * (`performance.now()` when the handler started) starts the worker's
   * own time; now when absent.
   */
  enter(
    info: RequestInfo,
    place: TicketPlace,
    clientSignal: AbortSignal,
    remote?: Deno.Addr,
    arrivedAt: number = performance.now(),
  ): RequestTicket {
    return new RequestTicket(
      this,
      info,
      place,
      clientSignal,
      remote,
      arrivedAt,
    );
  }

  /** Tickets not yet ended. */
  get openCount(): number {
    return this.#open.size;
  }

  /** Stalled answers now and since start. */
  get stalls(): Readonly<StallCounts> {
    return this.#stalls;
  }

  /** @internal A ticket's answer stalled (+1) or moved again / ended (-1). */
  countStalled(delta: 1 | -1): void {
    this.#stalls.now += delta;
    if (delta === 1) {
      this.#stalls.total++;
      if (this.stall?.abort) this.#stalls.aborted++;
    }
  }

  /** Aborts every open request (end of the drain at shutdown). */
  cancelAll(why: string): void {
    for (const t of this.#open) t.cancel(why);
  }

  /** Stops the deadline sweep and the client watch. */
  async close(): Promise<void> {
    this.deadlines.close();
    await this.clientWatch?.close();
  }

  /** @internal */
  track(ticket: RequestTicket): void {
    this.#open.add(ticket);
  }

  /** @internal */
  untrack(ticket: RequestTicket): void {
    this.#open.delete(ticket);
  }
}
