/**
 * The worker's own Prometheus `/metrics`: request counts, latency
 * histograms, in-flight figures, lifecycle, autoscaler reports, process
 * memory and the model server's load signals re-exported as
 * `edgeworker_engine_*`.
 *
 * Request series are updated from ledger events (O(1) counters, O(buckets)
 * histograms, no allocation once a route is known); everything else is read
 * from `sources` at scrape time.
 *
 * Longer than most modules: one metric set, and its names and help texts are half of it.
 *
 * @module
 */

import {
  type Ledger,
  type LedgerEvent,
  REJECT_REASONS,
  REQUEST_OUTCOMES,
  type RequestOutcome,
  type RequestRecord,
} from "../traffic/ledger.ts";
import type { EngineSnapshot } from "../model/engine_metrics.ts";
import { LIFECYCLE_STATES } from "../model/lifecycle.ts";
import {
  type CounterChild,
  CounterVec,
  type HistogramChild,
  HistogramVec,
  PROMETHEUS_CONTENT_TYPE,
  TextWriter,
} from "./prometheus_text.ts";

export * from "./prometheus_text.ts";

/** 1, 2.5 and 5 × 10^e seconds for each decade e from `from` to `to`. */
function steps(from: number, to: number): number[] {
  const out: number[] = [];
  for (let e = from; e <= to; e++) {
    // toPrecision: 2.5 * 10 ** -4 is not the double nearest 0.00025.
    for (const m of [1, 2.5, 5]) out.push(Number((m * 10 ** e).toPrecision(3)));
  }
  return out;
}

/** Time-to-first-byte buckets (seconds): 5 ms to 10 s, then 30 s and 60 s. */
export const TTFB_BUCKETS: readonly number[] = [
  ...steps(-3, 1).filter((x) => x >= 0.005 && x <= 10),
  30,
  60,
];

/** Request-duration buckets (seconds): LLM and media jobs run long. */
export const DURATION_BUCKETS: readonly number[] = [
  ...TTFB_BUCKETS,
  120,
  300,
  600,
];

/**
 * The worker's own overhead buckets (seconds): 0.1 ms to 1 s, where a
 * proxy's cost lies.
 */
export const OVERHEAD_BUCKETS: readonly number[] = [
  ...steps(-4, -1).filter((x) => x <= 0.25),
  1,
];

/**
 * A streamed chunk that waited longer than this (ms) for the client's
 * connection to take it marks its stream as delayed.
 */
export const STREAM_DELAY_MS = 50;

/** A handler's slot queue as `/metrics` shows it. */
export interface SlotFigures {
  /** Slots now (the adaptive count, or the fixed one). */
  readonly capacity: number;
  /** Slots in use. */
  readonly active: number;
}

/** Report counts per kind, as `Reporter.stats` gives them. */
export type ReportCounts = Readonly<
  Record<string, { readonly successes: number; readonly failures: number }>
>;

/** Read-at-scrape inputs, so this module depends on no other subsystem. */
export interface MetricsSources {
  /** Current lifecycle state (one of {@linkcode LIFECYCLE_STATES}). */
  lifecycle?: () => string;
  /** Benchmark throughput (`max_perf`, workload units per second). */
  benchmarkThroughput?: () => number;
  /** Throughput measured on live traffic (workload units per second). */
  liveThroughput?: () => number;
  /** Autoscaler report counts by kind. */
  reports?: () => ReportCounts;
  /** The model server's latest figures. */
  engine?: () => EngineSnapshot | undefined;
  /** Figures of the resumable streams' replay buffers. */
  resume?: () => ResumeFigures;
  /** Each route with a slot queue, and that queue. */
  concurrency?: () => Iterable<[string, SlotFigures]>;
}

/** What {@linkcode MetricsSources.resume} gives (the registry's stats). */
export interface ResumeFigures {
  streams: number;
  bufferedBytes: number;
  resumes: number;
  overflows: number;
  expired: number;
}

/** Options of {@linkcode WorkerMetrics}. */
export interface WorkerMetricsOptions {
  /** Request-duration bounds. @default {DURATION_BUCKETS} */
  durationBuckets?: readonly number[];
  /** Time-to-first-byte bounds. @default {TTFB_BUCKETS} */
  ttfbBuckets?: readonly number[];
  /** Bounds of the worker's own overhead. @default {OVERHEAD_BUCKETS} */
  overheadBuckets?: readonly number[];
  /** Wait of a chunk (ms) above which a stream counts as delayed. @default {STREAM_DELAY_MS} */
  streamDelayMs?: number;
}

const HELP = {
  edgeworker_requests_in_flight: "Requests admitted and not finished.",
  edgeworker_requests_queued: "Requests waiting for their turn.",
  edgeworker_workload_in_flight: "In-flight workload units (cur_load).",
  edgeworker_stream_chunks_total: "Body chunks relayed by finished requests.",
  edgeworker_benchmark_throughput: "Benchmark workload units/s (max_perf).",
  edgeworker_live_throughput: "Live-traffic workload units per second.",
  edgeworker_lifecycle_state: "1 for the current lifecycle state.",
  edgeworker_reports_total: "Autoscaler reports by kind and result.",
  edgeworker_process_resident_memory_bytes: "Resident set size.",
  edgeworker_process_heap_used_bytes: "V8 heap in use.",
  edgeworker_engine_up: "1 if the last model server scrape succeeded.",
  edgeworker_engine_last_scrape_timestamp_seconds:
    "Unix time of the last good model server scrape.",
  edgeworker_engine_requests_running: "Requests running in the model server.",
  edgeworker_engine_requests_waiting: "Requests waiting in the model server.",
  edgeworker_engine_kv_cache_usage_ratio: "Model server KV-cache usage (0-1).",
  edgeworker_engine_time_to_first_token_seconds: "Mean model server TTFT.",
  edgeworker_engine_queue_size: "Model server queue size (TGI).",
  edgeworker_engine_batch_size: "Model server current batch size (TGI).",
  edgeworker_resumable_streams: "Streams that may be resumed now.",
  edgeworker_resume_buffer_bytes: "Bytes held by resumable streams' buffers.",
  edgeworker_stream_resumes_total: "Resumes of dropped streams.",
  edgeworker_resume_overflows_total:
    "Streams ended by the replay buffer limit while their client was away.",
  edgeworker_resume_expired_total:
    "Model calls cancelled because no client resumed in time.",
  edgeworker_concurrency_limit:
    'Slots of the route\'s queue (maxConcurrency; "auto": the adaptive count).',
  edgeworker_concurrency_in_use: "Slots of the route's queue in use.",
} as const;

type Outcome = RequestOutcome | "rejected";

interface RouteSeries {
  outcomes: Record<Outcome, CounterChild>;
  duration: HistogramChild;
  ttfb: HistogramChild;
  beforeSend: HistogramChild;
  firstByte: HistogramChild;
  queueWait: HistogramChild;
  delayed: CounterChild;
}

/**
 * Renders `/metrics` from a {@linkcode Ledger} and read-only sources.
 *
 * @example
 * ```ts
 * import { Ledger } from "../traffic/ledger.ts";
 * import { WorkerMetrics } from "./worker_metrics.ts";
 * const metrics = new WorkerMetrics(new Ledger(), { lifecycle: () => "ready" });
 * const text = metrics.render();
 * metrics.close();
 * ```
 */
export class WorkerMetrics {
  /** `Content-Type` to answer `/metrics` with. */
  static readonly contentType: string = PROMETHEUS_CONTENT_TYPE;

  #ledger: Ledger;
  #sources: MetricsSources;
  #unsubscribe: () => void;
  #routes = new Map<string, RouteSeries>();
  #requests = new CounterVec(
    "edgeworker_requests_total",
    "Requests by route and final outcome.",
    ["route", "outcome"],
  );
  #rejected = new CounterVec(
    "edgeworker_requests_rejected_total",
    "Requests refused before they started, by reason.",
    ["reason"],
  );
  #rejectedBy = new Map<string, CounterChild>();
  #logErrors = new CounterVec(
    "edgeworker_model_log_errors_total",
    "Error lines of the model server (log: model or supervisor), by phase: startup (before the first ready: fatal) or serving (counted; the health check decides).",
    ["log", "phase"],
  );
  #duration: HistogramVec;
  #ttfb: HistogramVec;
  #beforeSend: HistogramVec;
  #firstByte: HistogramVec;
  #queueWait: HistogramVec;
  #delayed: CounterVec;
  #streamDelayMs: number;
  #chunks = 0;

  /** Subscribes to the ledger; counts already in it are carried over. */
  constructor(
    ledger: Ledger,
    sources: MetricsSources = {},
    options: WorkerMetricsOptions = {},
  ) {
    this.#ledger = ledger;
    this.#sources = sources;
    this.#duration = new HistogramVec(
      "edgeworker_request_duration_seconds",
      "Time from arrival to the end of the response, by route.",
      ["route"],
      options.durationBuckets ?? DURATION_BUCKETS,
    );
    this.#ttfb = new HistogramVec(
      "edgeworker_time_to_first_byte_seconds",
      "Time from arrival to the first body byte sent to the client, by route.",
      ["route"],
      options.ttfbBuckets ?? TTFB_BUCKETS,
    );
    const overhead = options.overheadBuckets ?? OVERHEAD_BUCKETS;
    this.#beforeSend = new HistogramVec(
      "edgeworker_overhead_before_send_seconds",
      "Worker time before the model call is sent (handler start to fetch, slot wait excluded), by route.",
      ["route"],
      overhead,
    );
    this.#firstByte = new HistogramVec(
      "edgeworker_overhead_first_byte_seconds",
      "Worker time added to the first byte (model answer to first chunk handed to the client, model body wait excluded), by route.",
      ["route"],
      overhead,
    );
    this.#queueWait = new HistogramVec(
      "edgeworker_queue_wait_seconds",
      "Time waiting for a slot of the route's queue, by route.",
      ["route"],
      options.ttfbBuckets ?? TTFB_BUCKETS,
    );
    this.#streamDelayMs = options.streamDelayMs ?? STREAM_DELAY_MS;
    this.#delayed = new CounterVec(
      "edgeworker_streams_delayed_total",
      `Streams with a chunk that waited over ${this.#streamDelayMs} ms for the client connection (chunks delayed, and merged by the reads after), by route.`,
      ["route"],
    );
    for (const reason of REJECT_REASONS) {
      this.#rejectedBy.set(reason, this.#rejected.labels(reason));
    }
    for (const log of ["model", "supervisor"]) {
      for (const phase of ["startup", "serving"]) {
        this.#logErrors.labels(log, phase);
      }
    }
    for (const [key, n] of ledger.totals()) {
      const [route, outcome] = key.split("\u0000");
      if (outcome.startsWith("rejected_")) {
        this.#route(route).outcomes.rejected.inc(n);
        this.#rejectedChild(outcome.slice("rejected_".length)).inc(n);
      } else if ((REQUEST_OUTCOMES as readonly string[]).includes(outcome)) {
        this.#route(route).outcomes[outcome as RequestOutcome].inc(n);
      }
    }
    this.#unsubscribe = ledger.subscribe((e) => this.#onEvent(e));
  }

  /** Counts one error line of the model server's log (or supervisord's). */
  countLogError(log: string, phase: string): void {
    this.#logErrors.labels(log, phase).inc();
  }

  /** Stops following the ledger. */
  close(): void {
    this.#unsubscribe();
  }

  /** The exposition text for `/metrics`. */
  render(): string {
    const w = new TextWriter();
    const s = this.#sources;
    const ledger = this.#ledger;
    this.#requests.render(w);
    this.#rejected.render(w);
    this.#logErrors.render(w);
    let queued = 0;
    for (const r of ledger.inFlight) if (r.status === "queued") queued++;
    const one = (name: keyof typeof HELP, value: number): void => {
      const type = name.endsWith("_total") ? "counter" : "gauge";
      w.single(name, type, HELP[name], value);
    };
    one("edgeworker_requests_in_flight", ledger.inFlightCount);
    one("edgeworker_requests_queued", queued);
    one("edgeworker_workload_in_flight", ledger.currentLoad);
    this.#duration.render(w);
    this.#ttfb.render(w);
    this.#beforeSend.render(w);
    this.#firstByte.render(w);
    this.#queueWait.render(w);
    this.#delayed.render(w);
    if (s.concurrency) {
      const limit = "edgeworker_concurrency_limit";
      const inUse = "edgeworker_concurrency_in_use";
      const queues = [...s.concurrency()];
      w.family(limit, "gauge", HELP[limit]);
      for (const [route, q] of queues) w.sample(limit, { route }, q.capacity);
      w.family(inUse, "gauge", HELP[inUse]);
      for (const [route, q] of queues) w.sample(inUse, { route }, q.active);
    }
    one("edgeworker_stream_chunks_total", this.#chunks);
    one("edgeworker_benchmark_throughput", s.benchmarkThroughput?.() ?? 0);
    one("edgeworker_live_throughput", s.liveThroughput?.() ?? 0);
    const state = s.lifecycle?.() ?? "starting";
    const lc = "edgeworker_lifecycle_state";
    w.family(lc, "gauge", HELP[lc]);
    for (const st of LIFECYCLE_STATES) {
      w.sample(lc, { state: st }, st === state ? 1 : 0);
    }
    const rep = "edgeworker_reports_total";
    w.family(rep, "counter", HELP[rep]);
    for (const [kind, c] of Object.entries(s.reports?.() ?? {})) {
      w.sample(rep, { kind, result: "success" }, c.successes);
      w.sample(rep, { kind, result: "failure" }, c.failures);
    }
    const mem = Deno.memoryUsage();
    one("edgeworker_process_resident_memory_bytes", mem.rss);
    one("edgeworker_process_heap_used_bytes", mem.heapUsed);
    const snap = s.engine?.();
    if (snap) {
      const up = snap.error === undefined && snap.scrapedAt !== undefined;
      one("edgeworker_engine_up", up ? 1 : 0);
      if (snap.scrapedAt !== undefined) {
        one(
          "edgeworker_engine_last_scrape_timestamp_seconds",
          snap.scrapedAt / 1000,
        );
      }
      for (const [field, name] of ENGINE_GAUGES) {
        const v = snap[field];
        if (typeof v === "number") one(name, v);
      }
    }
    const resume = s.resume?.();
    if (resume) {
      one("edgeworker_resumable_streams", resume.streams);
      one("edgeworker_resume_buffer_bytes", resume.bufferedBytes);
      one("edgeworker_stream_resumes_total", resume.resumes);
      one("edgeworker_resume_overflows_total", resume.overflows);
      one("edgeworker_resume_expired_total", resume.expired);
    }
    return w.text();
  }

  #onEvent(e: LedgerEvent): void {
    if (e.type === "finish") this.#onFinish(e.record);
    else if (e.type === "reject") {
      this.#route(e.record.route).outcomes.rejected.inc();
      this.#rejectedChild(e.record.rejectReason ?? "unknown").inc();
    }
  }

  #onFinish(r: RequestRecord): void {
    if (
      r.status !== "success" && r.status !== "error" && r.status !== "cancelled"
    ) return;
    const series = this.#route(r.route);
    series.outcomes[r.status].inc();
    const end = r.workCompletedAt ?? r.enteredQueueAt;
    series.duration.observe(Math.max(0, end - r.enteredQueueAt));
    if (r.firstByteAt !== null) {
      series.ttfb.observe(Math.max(0, r.firstByteAt / 1000 - r.enteredQueueAt));
    }
    if (r.beforeSendMs !== null) {
      series.beforeSend.observe(r.beforeSendMs / 1000);
    }
    if (r.firstByteOverheadMs !== null) {
      series.firstByte.observe(r.firstByteOverheadMs / 1000);
    }
    if (r.queueWaitMs !== null) series.queueWait.observe(r.queueWaitMs / 1000);
    if (r.maxChunkGapMs > this.#streamDelayMs) series.delayed.inc();
    this.#chunks += r.chunks;
  }

  #rejectedChild(reason: string): CounterChild {
    let child = this.#rejectedBy.get(reason);
    if (!child) {
      this.#rejectedBy.set(reason, child = this.#rejected.labels(reason));
    }
    return child;
  }

  #route(route: string): RouteSeries {
    let series = this.#routes.get(route);
    if (!series) {
      series = {
        outcomes: {
          success: this.#requests.labels(route, "success"),
          error: this.#requests.labels(route, "error"),
          cancelled: this.#requests.labels(route, "cancelled"),
          rejected: this.#requests.labels(route, "rejected"),
        },
        duration: this.#duration.labels(route),
        ttfb: this.#ttfb.labels(route),
        beforeSend: this.#beforeSend.labels(route),
        firstByte: this.#firstByte.labels(route),
        queueWait: this.#queueWait.labels(route),
        delayed: this.#delayed.labels(route),
      };
      this.#routes.set(route, series);
    }
    return series;
  }
}

const ENGINE_GAUGES: [keyof EngineSnapshot, keyof typeof HELP][] = [
  ["running", "edgeworker_engine_requests_running"],
  ["waiting", "edgeworker_engine_requests_waiting"],
  ["kvCacheUsage", "edgeworker_engine_kv_cache_usage_ratio"],
  ["ttftSeconds", "edgeworker_engine_time_to_first_token_seconds"],
  ["queueSize", "edgeworker_engine_queue_size"],
  ["batchSize", "edgeworker_engine_batch_size"],
];
