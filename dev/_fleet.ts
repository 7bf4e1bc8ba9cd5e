/**
 * The control plane's picture of its workers, built from what they report:
 * each `/worker_status/` registers or updates a worker, `/delete_requests/`
 * closes the requests it was routed. `/route/` picks among them the way
 * the autoscaler does with the figures it has: only workers that are ready
 * (loaded, benchmarked, no `error_msg`, reported lately), the one with the
 * least expected wait (`cur_load` plus what was routed to it since, over
 * `max_perf`), and none (the request waits in the global queue) when even
 * that wait is above the endpoint's `max_queue_time` (protocol reference
 * §10).
 *
 * @module
 */
import {
  type LiveRequest,
  type LiveView,
  type LiveWorker,
  RecentList,
  SeriesBins,
} from "../lib/metrics/live_view.ts";
import type { FinishedRequest } from "./_wire_check.ts";

/** A worker the control plane has heard from. */
interface Member {
  id: number;
  url: string;
  mtoken: string;
  loadtime: number;
  curLoad: number;
  maxPerf: number;
  working: number;
  errorMsg: string;
  reportedAt: number;
  reports: number;
  /** Routed here, not yet seen in a report or closed: request_idx → cost. */
  pending: Map<number, { cost: number; at: number }>;
}

/** Options of {@linkcode Fleet}. */
export interface FleetOptions {
  /** A worker silent this long is not routed to. @default {30000} */
  staleMs?: number;
  /** The endpoint's `max_queue_time`, seconds. @default {30} */
  maxQueueTime?: number;
  /** Clock, unix ms. */
  now?: () => number;
}

/** What a full `/worker_status/` body carries (checked before). */
export interface StatusFigures {
  id: number;
  url: string;
  mtoken: string;
  loadtime?: number;
  cur_load?: number;
  max_perf?: number;
  cur_perf?: number;
  num_requests_working?: number;
  working_request_idxs?: number[];
  error_msg: string;
}

/** A chosen worker for one `/route/` call. */
export interface RouteChoice {
  id: number;
  url: string;
}

/** Routed requests are forgotten as "pending" after this long. */
const PENDING_MS = 10_000;

/** Workers by id, routing, and the figures of the live page. */
export class Fleet {
  #members = new Map<number, Member>();
  #requests = new RecentList<LiveRequest>(50);
  #series = new SeriesBins(120);
  #staleMs: number;
  #maxQueueTime: number;
  #now: () => number;

  /** An empty fleet. */
  constructor(options: FleetOptions = {}) {
    this.#staleMs = options.staleMs ?? 30_000;
    this.#maxQueueTime = options.maxQueueTime ?? 30;
    this.#now = options.now ?? Date.now;
  }

  /** Registers or updates the reporting worker. */
  report(s: StatusFigures): void {
    const now = this.#now();
    let m = this.#members.get(s.id);
    if (!m) {
      m = {
        id: s.id,
        url: s.url,
        mtoken: s.mtoken,
        loadtime: 0,
        curLoad: 0,
        maxPerf: 0,
        working: 0,
        errorMsg: "",
        reportedAt: now,
        reports: 0,
        pending: new Map(),
      };
      this.#members.set(s.id, m);
    }
    m.url = s.url || m.url;
    m.mtoken = s.mtoken;
    m.errorMsg = s.error_msg;
    m.loadtime = s.loadtime ?? m.loadtime;
    m.curLoad = s.cur_load ?? m.curLoad;
    m.maxPerf = s.max_perf ?? m.maxPerf;
    m.working = s.num_requests_working ?? m.working;
    m.reportedAt = now;
    m.reports++;
    // What the worker now counts in cur_load is no longer pending here.
    for (const idx of s.working_request_idxs ?? []) {
      m.pending.delete(idx);
      const r = this.#requests.get(`${m.id}:${idx}`);
      if (r && r.outcome === "routed") r.outcome = "working";
    }
    this.#dropOldPending(m, now);
    this.#series.record(now, this.#totalLoad(), s.cur_perf ?? 0);
  }

  /** Closes requests a worker reported finished. */
  finished(workerId: number, done: readonly FinishedRequest[]): void {
    const m = this.#members.get(workerId);
    for (const f of done) {
      m?.pending.delete(f.requestIdx);
      const key = `${workerId}:${f.requestIdx}`;
      const known = this.#requests.get(key);
      const q = f.enteredQueueAt, s = f.workStartedAt, c = f.workCompletedAt;
      this.#requests.set(key, {
        requestIdx: String(f.requestIdx),
        worker: workerId,
        route: known?.route ?? "",
        workload: known?.workload ?? 0,
        outcome: f.status ?? (f.success ? "Success" : "Error"),
        at: known?.at ?? (q !== null ? q * 1000 : this.#now()),
        queueSeconds: q !== null && s !== null ? s - q : null,
        workSeconds: s !== null && c !== null ? c - s : null,
      });
    }
  }

  /**
   * The ready worker with the least expected wait for a request of `cost`,
   * or `undefined` (answer "waiting") when none is ready or all are full.
   */
  choose(cost: number): RouteChoice | undefined {
    const now = this.#now();
    let best: Member | undefined;
    let bestWait = Infinity;
    for (const m of this.#members.values()) {
      if (this.#state(m, now) !== "ready") continue;
      this.#dropOldPending(m, now);
      const wait = this.#expectedLoad(m) / m.maxPerf;
      if (wait < bestWait) {
        best = m;
        bestWait = wait;
      }
    }
    if (!best) return undefined;
    // An idle worker takes any request, however large.
    const idle = this.#expectedLoad(best) === 0;
    if (!idle && bestWait + cost / best.maxPerf > this.#maxQueueTime) {
      return undefined;
    }
    return { id: best.id, url: best.url };
  }

  /** Notes that request `requestIdx` of `cost` went to worker `id`. */
  routed(id: number, requestIdx: number, cost: number, route = ""): void {
    const now = this.#now();
    this.#members.get(id)?.pending.set(requestIdx, { cost, at: now });
    this.#requests.set(`${id}:${requestIdx}`, {
      requestIdx: String(requestIdx),
      worker: id,
      route,
      workload: cost,
      outcome: "routed",
      at: now,
      queueSeconds: null,
      workSeconds: null,
    });
  }

  /** Number of ready workers. */
  get readyCount(): number {
    const now = this.#now();
    return [...this.#members.values()].filter((m) =>
      this.#state(m, now) === "ready"
    ).length;
  }

  /** The live page's data. */
  view(title: string, facts: Record<string, string | number>): LiveView {
    const now = this.#now();
    const workers: LiveWorker[] = [...this.#members.values()]
      .sort((a, b) => a.id - b.id)
      .map((m) => ({
        id: m.id,
        url: m.url,
        state: this.#state(m, now),
        load: m.curLoad,
        maxPerf: m.maxPerf,
        queue: m.working,
        waitSeconds: m.maxPerf > 0 ? this.#expectedLoad(m) / m.maxPerf : null,
        errorMsg: m.errorMsg,
        updatedAt: m.reportedAt,
      }));
    return {
      title,
      now,
      workers,
      requests: this.#requests.list(),
      series: this.#series.points(now),
      facts,
    };
  }

  #state(m: Member, now: number): string {
    if (m.errorMsg !== "") return "error";
    if (now - m.reportedAt > this.#staleMs) return "stale";
    return m.loadtime > 0 && m.maxPerf > 0 ? "ready" : "loading";
  }

  #expectedLoad(m: Member): number {
    let load = m.curLoad;
    for (const p of m.pending.values()) load += p.cost;
    return load;
  }

  #totalLoad(): number {
    let sum = 0;
    for (const m of this.#members.values()) sum += m.curLoad;
    return sum;
  }

  #dropOldPending(m: Member, now: number): void {
    for (const [idx, p] of m.pending) {
      if (now - p.at > PENDING_MS) m.pending.delete(idx);
    }
  }
}
