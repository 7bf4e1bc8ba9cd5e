/**
 * What the live page shows, as one JSON document: the workers with their
 * state, load, `max_perf` and queue, the last requests with their outcome,
 * and load and throughput over time. The local control plane builds it for
 * every worker that reports to it; a worker's `/dashboard` builds it for
 * itself from its ledger. {@linkcode SeriesBins} keeps the time series in
 * fixed memory: one bin per second, O(1) per update.
 *
 * @module
 */

/** One worker as the page shows it. */
export interface LiveWorker {
  /** `CONTAINER_ID` (the report's `id`). */
  id: number;
  /** Public URL the worker reports. */
  url: string;
  /** `loading`, `ready`, `error`, `stale` (no report lately) or a lifecycle state. */
  state: string;
  /** In-flight workload (`cur_load`). */
  load: number;
  /** Benchmark throughput, workload units per second. */
  maxPerf: number;
  /** Requests in flight (queued or working). */
  queue: number;
  /** `cur_load / max_perf`: seconds of work ahead of a new request. */
  waitSeconds: number | null;
  /** Sticky error message; "" when healthy. */
  errorMsg: string;
  /** Unix ms of the last report (or the last change). */
  updatedAt: number;
}

/** One request and how it ended. */
export interface LiveRequest {
  /** `request_idx` (the autoscaler's queue id), as text (it may exceed 2^53). */
  requestIdx: string;
  /** Worker id that got it. */
  worker: number;
  /** Handler route, when known. */
  route: string;
  /** Workload (worker) or cost (control plane). */
  workload: number;
  /** `routed`, `working`, `Success`, `Error`, `Cancelled`, `Rejected`. */
  outcome: string;
  /** Unix ms it was routed or received. */
  at: number;
  /** Seconds it waited in the worker's queue, when known. */
  queueSeconds: number | null;
  /** Seconds of work, when known. */
  workSeconds: number | null;
}

/** One point of the chart. */
export interface LivePoint {
  /** Unix ms (start of the second). */
  t: number;
  /** Highest in-flight workload seen in that second (a quiet second: the load it kept). */
  load: number;
  /** Workload served per second, averaged over the last few seconds. */
  throughput: number;
}

/** One report a worker sent (the control plane's view only). */
export interface LiveReport {
  /** `worker_status` or `delete_requests`. */
  kind: string;
  /** Unix ms it arrived. */
  at: number;
  /** What was wrong with it (`field: error`); empty when valid. */
  problems: string[];
  /** The body as sent, cut at 400 characters. */
  body: string;
}

/** The whole page's data. */
export interface LiveView {
  /** Page heading. */
  title: string;
  /** Unix ms the view was built. */
  now: number;
  workers: LiveWorker[];
  /** Newest first. */
  requests: LiveRequest[];
  /** Oldest first, one per second. */
  series: LivePoint[];
  /** Short facts shown under the heading (`reports: 12`). */
  facts: Record<string, string | number>;
  /** The last reports received, newest first (a control plane shows them). */
  reports?: LiveReport[];
}

/** Seconds the throughput of a point is averaged over. */
const SMOOTH_SECONDS = 5;

/**
 * Load and served workload per second, for the last `seconds` seconds. A
 * second with no update keeps the load of the one before it.
 */
export class SeriesBins {
  #seconds: number;
  #load: Float64Array;
  #peak: Float64Array;
  #served: Float64Array;
  #stamp: Float64Array;
  #startLoad: Float64Array;
  #lastLoad = 0;

  /** Keeps `seconds` seconds of history. @default {120} */
  constructor(seconds = 120) {
    this.#seconds = seconds;
    this.#load = new Float64Array(seconds);
    this.#peak = new Float64Array(seconds);
    this.#served = new Float64Array(seconds);
    this.#stamp = new Float64Array(seconds).fill(-1);
    this.#startLoad = new Float64Array(seconds);
  }

  /** Notes the load now (`atMs`) and workload served since the last call. */
  record(atMs: number, load: number, served = 0): void {
    const sec = Math.floor(atMs / 1000);
    const i = this.#slot(sec);
    this.#load[i] = load;
    this.#peak[i] = Math.max(this.#peak[i], load);
    this.#served[i] += served;
    this.#lastLoad = load;
  }

  /** The points from `seconds` ago up to `nowMs`, oldest first. */
  points(nowMs: number, seconds = this.#seconds): LivePoint[] {
    const end = Math.floor(nowMs / 1000);
    const start = end - Math.min(seconds, this.#seconds) + 1;
    // Before the first update in the window the load is what it was when
    // that second began (or, with no update at all, the last load).
    let load = this.#lastLoad;
    for (let sec = start; sec <= end; sec++) {
      if (this.#stamp[sec % this.#seconds] === sec) {
        load = this.#startLoad[sec % this.#seconds];
        break;
      }
    }
    const out: LivePoint[] = [];
    const recent: number[] = [];
    let recentSum = 0;
    for (let sec = start; sec <= end; sec++) {
      const i = sec % this.#seconds;
      const fresh = this.#stamp[i] === sec;
      // A short burst shows as its peak; the next quiet second as the end.
      const shown = fresh ? this.#peak[i] : load;
      if (fresh) load = this.#load[i];
      const served = fresh ? this.#served[i] : 0;
      recent.push(served);
      recentSum += served;
      if (recent.length > SMOOTH_SECONDS) recentSum -= recent.shift()!;
      out.push({
        t: sec * 1000,
        load: shown,
        throughput: recentSum / SMOOTH_SECONDS,
      });
    }
    return out;
  }

  #slot(sec: number): number {
    const i = sec % this.#seconds;
    if (this.#stamp[i] !== sec) {
      this.#stamp[i] = sec;
      this.#served[i] = 0;
      // A new second starts at the load the last one ended with.
      this.#load[i] = this.#lastLoad;
      this.#peak[i] = this.#lastLoad;
      this.#startLoad[i] = this.#lastLoad;
    }
    return i;
  }
}

/**
 * Keeps the newest `limit` items (a ring), newest first on read; items can
 * be updated in place through the key they were added with.
 */
export class RecentList<T> {
  #limit: number;
  #items = new Map<string, T>();

  /** Keeps at most `limit` items. @default {50} */
  constructor(limit = 50) {
    this.#limit = limit;
  }

  /** Adds or replaces the item under `key` (as the newest when new). */
  set(key: string, item: T): void {
    if (!this.#items.has(key) && this.#items.size >= this.#limit) {
      this.#items.delete(this.#items.keys().next().value!);
    }
    this.#items.set(key, item);
  }

  /** The item under `key`, if still kept. */
  get(key: string): T | undefined {
    return this.#items.get(key);
  }

  /** Newest first. */
  list(): T[] {
    return [...this.#items.values()].reverse();
  }
}
