/**
 * The request ledger: one record per request and the counters the
 * autoscaler needs. It is the single source of every figure the worker
 * reports (`/worker_status/`, `/delete_requests/`, `/metrics`, `/status`).
 *
 * Longer than most modules: one class holding every record and running sum, so the figures have one owner.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { clampWorkload } from "./workload.ts";

const log = getLogger(["edgeworker", "ledger"]);

/** Final outcomes of a request that was admitted. */
export const REQUEST_OUTCOMES = ["success", "error", "cancelled"] as const;

/** One of {@linkcode REQUEST_OUTCOMES}. */
export type RequestOutcome = typeof REQUEST_OUTCOMES[number];

/** Every state a request record can be in. */
export type RequestStatus = "queued" | "working" | RequestOutcome | "rejected";

/** Why a request was refused before it started (a `reason` label of `/metrics`). */
export const REJECT_REASONS = [
  "signature",
  "budget",
  "sessions",
  "session",
  "draining",
  "not_ready",
  "queue_timeout",
] as const;

/** One of {@linkcode REJECT_REASONS}. */
export type RejectReason = typeof REJECT_REASONS[number];

/** What the ledger needs to open a record. */
export interface RequestInfo {
  /** `auth_data.request_idx` (0 when absent); a `bigint` beyond 2^53, exact as Python keeps it. */
  requestIdx: number | bigint;
  /** `auth_data.reqnum` (0 when absent); a `bigint` beyond 2^53. */
  reqnum: number | bigint;
  /** Handler route, e.g. `/v1/completions`. */
  route: string;
  /** Workload units of this request. */
  workload: number;
  /** Set for requests that run inside a session: not reported one by one. */
  sessionId?: string;
  /** `"session"` for the record that stands for a whole session. */
  kind?: "request" | "session";
}

/** One request, from arrival to its final state. */
export interface RequestRecord extends Readonly<RequestInfo> {
  /** Internal id, unique per process (reqnum may repeat). */
  readonly id: number;
  status: RequestStatus;
  /** HTTP status answered (0 until known). */
  httpStatus: number;
  rejectReason?: RejectReason;
  /** Unix seconds (float), like the Python worker. */
  enteredQueueAt: number;
  workStartedAt: number | null;
  workCompletedAt: number | null;
  /** Unix ms of the first body byte relayed to the client. */
  firstByteAt: number | null;
  /** Body chunks relayed to the client. */
  chunks: number;
  /**
   * Ms the worker spent on the request before the model call was sent:
   * from the handler's start to `fetch()`, slot wait excluded; null until
   * sent. See `lib/traffic/ticket.ts` for what is and is not seen.
   */
  beforeSendMs: number | null;
  /** Ms waiting for a slot of the handler's queue; null without a queue. */
  queueWaitMs: number | null;
  /**
   * Ms the worker added to the first byte: from the model's answer to the
   * first chunk handed to the client, time spent awaiting the model's body
   * excluded; null until a first chunk.
   */
  firstByteOverheadMs: number | null;
  /** Longest wait of a streamed chunk for the client connection to take it, ms. */
  maxChunkGapMs: number;
  /** Short cause of an error or cancel, for logs and `/status`. */
  detail?: string;
  /** Monotonic ms (`performance.now()`) when work started and ended: durations survive wall-clock steps. */
  startedMono: number | null;
  completedMono: number | null;
}

/** Workload sums since the last report the autoscaler accepted. */
export interface LedgerWindow {
  received: number;
  served: number;
  cancelled: number;
  errored: number;
  rejected: number;
}

/** A change a listener is told about. */
export type LedgerEvent =
  | { type: "open"; record: RequestRecord }
  | { type: "start"; record: RequestRecord }
  | { type: "finish"; record: RequestRecord }
  | { type: "reject"; record: RequestRecord };

/** Options of {@linkcode Ledger}. */
export interface LedgerOptions {
  /**
   * Most finished records kept for `/delete_requests/` while the autoscaler
   * cannot be reached; the oldest are dropped beyond it.
   * @default {100000}
   */
  maxFinished?: number;
  /** Clock in unix ms, for tests. */
  now?: () => number;
}

const EMPTY_WINDOW: LedgerWindow = Object.freeze({
  received: 0,
  served: 0,
  cancelled: 0,
  errored: 0,
  rejected: 0,
});

/**
 * Keeps every in-flight request and the counters derived from them.
 *
 * @example Account for one request
 * ```ts
 * import { Ledger } from "./ledger.ts";
 * const ledger = new Ledger();
 * const rec = ledger.open({ requestIdx: 1, reqnum: 1, route: "/x", workload: 10 });
 * ledger.start(rec);
 * ledger.finish(rec, "success", 200);
 * ```
 */
export class Ledger {
  #nextId = 1;
  #open = new Map<number, RequestRecord>();
  #finished: RequestRecord[] = [];
  #window: LedgerWindow = { ...EMPTY_WINDOW };
  #listeners = new Set<(event: LedgerEvent) => void>();
  #maxFinished: number;
  #now: () => number;
  #received = 0;
  #droppedFinished = 0;
  // Running sums, so the request path never walks the open records.
  #currentLoad = 0;
  #queueWorkload = 0;
  #totals = new Map<string, number>();

  /** Creates an empty ledger. */
  constructor(options: LedgerOptions = {}) {
    this.#maxFinished = options.maxFinished ?? 100_000;
    this.#now = options.now ?? Date.now;
  }

  /** Registers a listener for every change; returns its remover. */
  subscribe(listener: (event: LedgerEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Opens a record for an admitted request (state `queued`). */
  open(info: RequestInfo): RequestRecord {
    const record = this.#newRecord(info, "queued");
    this.#open.set(record.id, record);
    this.#addLoad(record, 1);
    this.#window.received += record.workload;
    if (info.kind !== "session" && info.sessionId === undefined) {
      this.#received++;
    }
    this.#emit({ type: "open", record });
    return record;
  }

  /** Marks a queued request as working (sent to the model server). */
  start(record: RequestRecord): void {
    if (record.status !== "queued") return;
    record.status = "working";
    record.workStartedAt = this.#now() / 1000;
    record.startedMono = performance.now();
    this.#emit({ type: "start", record });
  }

  /**
   * Moves a request to its final state. Only the first call counts, so a
   * late abort after a completed response cannot turn a success into a
   * cancel. Returns whether this call decided the outcome.
   */
  finish(
    record: RequestRecord,
    outcome: RequestOutcome,
    httpStatus: number,
    detail?: string,
  ): boolean {
    if (!this.#open.delete(record.id)) return false;
    this.#addLoad(record, -1);
    record.status = outcome;
    record.httpStatus = httpStatus;
    record.workCompletedAt = this.#now() / 1000;
    record.workStartedAt ??= record.workCompletedAt;
    record.completedMono = performance.now();
    record.startedMono ??= record.completedMono;
    if (detail !== undefined) record.detail = detail;
    if (outcome === "success") this.#window.served += record.workload;
    else if (outcome === "cancelled") {
      this.#window.cancelled += record.workload;
    } else this.#window.errored += record.workload;
    this.#count(record.route, outcome);
    this.#enqueueFinished(record);
    this.#emit({ type: "finish", record });
    return true;
  }

  /**
   * Ends a queued request that waited past its queue time: refused (429)
   * after admission. It counts as rejected, and its workload leaves
   * `new_load` as a cancel's does, since it was received and never served.
   */
  expire(record: RequestRecord, httpStatus: number, detail: string): boolean {
    if (!this.#open.delete(record.id)) return false;
    this.#addLoad(record, -1);
    record.status = "rejected";
    record.rejectReason = "queue_timeout";
    record.httpStatus = httpStatus;
    record.detail = detail;
    record.workCompletedAt = this.#now() / 1000;
    record.workStartedAt = record.workCompletedAt;
    record.startedMono = record.completedMono = performance.now();
    this.#window.cancelled += record.workload;
    this.#count(record.route, "rejected_queue_timeout");
    this.#enqueueFinished(record);
    this.#emit({ type: "reject", record });
    return true;
  }

  /** Records a request refused before it started (401, 429, 503). */
  reject(
    info: RequestInfo,
    reason: RejectReason,
    httpStatus: number,
  ): RequestRecord {
    const record = this.#newRecord(info, "rejected");
    record.rejectReason = reason;
    record.httpStatus = httpStatus;
    record.workStartedAt = record.enteredQueueAt;
    record.workCompletedAt = record.enteredQueueAt;
    this.#window.rejected += record.workload;
    this.#count(info.route, `rejected_${reason}`);
    this.#enqueueFinished(record);
    this.#emit({ type: "reject", record });
    return record;
  }

  /** Records still queued or working. */
  get inFlight(): IterableIterator<RequestRecord> {
    return this.#open.values();
  }

  /** Number of records still queued or working. */
  get inFlightCount(): number {
    return this.#open.size;
  }

  /**
   * In-flight workload as the autoscaler's `cur_load`: requests outside
   * sessions plus whole sessions (requests inside a session are covered by
   * their session's record).
   */
  get currentLoad(): number {
    return this.#open.size === 0 ? 0 : this.#currentLoad;
  }

  /** Workload that stands in the way of a new request (sessions excluded). */
  get queueWorkload(): number {
    return this.#open.size === 0 ? 0 : this.#queueWorkload;
  }

  /** Requests received since the process started (sessions excluded). */
  get receivedCount(): number {
    return this.#received;
  }

  /** Finished records dropped because the autoscaler was unreachable. */
  get droppedFinished(): number {
    return this.#droppedFinished;
  }

  /** Copy of the workload sums since the last accepted report. */
  window(): LedgerWindow {
    return { ...this.#window };
  }

  /**
   * Subtracts a window that the autoscaler accepted, so what arrived while
   * the report was in flight is kept for the next one.
   */
  settleWindow(sent: LedgerWindow): void {
    for (const key of Object.keys(sent) as (keyof LedgerWindow)[]) {
      this.#window[key] = Math.max(0, this.#window[key] - sent[key]);
    }
  }

  /** Finished records not yet acknowledged by `/delete_requests/`. */
  pendingFinished(): readonly RequestRecord[] {
    return this.#finished.slice();
  }

  /** How many finished records wait for `/delete_requests/`. */
  get pendingFinishedCount(): number {
    return this.#finished.length;
  }

  /** Removes records the autoscaler accepted; others stay for the next try. */
  acknowledge(sent: readonly RequestRecord[]): void {
    const ids = new Set(sent.map((r) => r.id));
    this.#finished = this.#finished.filter((r) => !ids.has(r.id));
  }

  /** Lifetime counts by route and outcome (`rejected_<reason>` for rejects). */
  totals(): ReadonlyMap<string, number> {
    return this.#totals;
  }

  #newRecord(info: RequestInfo, status: RequestStatus): RequestRecord {
    return {
      ...info,
      // Whatever a caller computed, the sums only ever see finite, capped units.
      workload: clampWorkload(info.workload),
      id: this.#nextId++,
      status,
      httpStatus: 0,
      enteredQueueAt: this.#now() / 1000,
      workStartedAt: null,
      workCompletedAt: null,
      firstByteAt: null,
      chunks: 0,
      beforeSendMs: null,
      queueWaitMs: null,
      firstByteOverheadMs: null,
      maxChunkGapMs: 0,
      startedMono: null,
      completedMono: null,
    };
  }

  #addLoad(r: RequestRecord, sign: 1 | -1): void {
    if (r.sessionId === undefined || r.kind === "session") {
      this.#currentLoad += sign * r.workload;
    }
    if (r.kind !== "session") this.#queueWorkload += sign * r.workload;
    // Float sums drift; an empty ledger is exactly zero.
    if (this.#open.size === 0) this.#currentLoad = this.#queueWorkload = 0;
  }

  #enqueueFinished(record: RequestRecord): void {
    // Requests inside a session are reported through their session record.
    if (record.sessionId !== undefined && record.kind !== "session") return;
    this.#finished.push(record);
    if (this.#finished.length > this.#maxFinished) {
      this.#finished.shift();
      this.#droppedFinished++;
    }
  }

  #count(route: string, outcome: string): void {
    const key = `${route}\u0000${outcome}`;
    this.#totals.set(key, (this.#totals.get(key) ?? 0) + 1);
  }

  // A listener that throws must not break the accounting of the request.
  #emit(event: LedgerEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (e) {
        log.error("Ledger listener failed on {type}: {error}", {
          type: event.type,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
  }
}
