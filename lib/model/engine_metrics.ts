/**
 * Scrapes the model server's own Prometheus `/metrics` (vLLM, SGLang, TGI)
 * on an interval, off the request path, and keeps the few load signals the
 * Gateway API Inference Extension relies on: running and waiting requests,
 * KV-cache usage, mean time to first token, TGI queue and batch size.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { delay } from "../std/async.ts";

const logger = getLogger(["edgeworker", "engine-metrics"]);

/** Model servers whose metric names are known. */
export type EngineKind = "vllm" | "sglang" | "tgi";

/** Latest engine figures; fields are absent when the engine lacks them. */
export interface EngineSnapshot {
  /** Requests being computed (TGI: current batch size). */
  running?: number;
  /** Requests waiting in the engine (TGI: queue size). */
  waiting?: number;
  /** KV-cache usage as a fraction in [0, 1] (highest over label sets). */
  kvCacheUsage?: number;
  /** Mean time to first token since the engine started, in seconds. */
  ttftSeconds?: number;
  /** TGI `tgi_queue_size`. */
  queueSize?: number;
  /** TGI `tgi_batch_current_size`. */
  batchSize?: number;
  /** Unix ms of the last successful scrape. */
  scrapedAt?: number;
  /** Why the last scrape failed; figures are dropped while it fails. */
  error?: string;
}

/** Options of {@linkcode EngineMetricsScraper}. */
export interface EngineMetricsOptions {
  /** The engine's metrics URL, e.g. `http://127.0.0.1:18000/metrics`. */
  url: string;
  /** Time between scrapes. */
  intervalMs: number;
  /** Which metric names to read. */
  kind: EngineKind;
  /**
   * Per-scrape timeout.
   * @default {min(intervalMs, 5000)}
   */
  timeoutMs?: number;
  /** Called with each scrape's snapshot (off the request path). */
  onSnapshot?: (snapshot: EngineSnapshot) => void;
}

interface Series {
  /** Histogram base names whose `_sum / _count` is the mean TTFT. */
  ttft: string[];
  /** Metric name → the snapshot field it fills (the first one found). */
  gauges: Record<string, keyof EngineSnapshot>;
}

// A usage fraction per label set (one per GPU or model): the highest is the
// truth, a sum is not.
const MAX_FIELDS: ReadonlySet<keyof EngineSnapshot> = new Set(["kvCacheUsage"]);

const SERIES: Record<EngineKind, Series> = {
  vllm: {
    ttft: ["vllm:time_to_first_token_seconds"],
    gauges: {
      "vllm:num_requests_running": "running",
      "vllm:num_requests_waiting": "waiting",
      "vllm:kv_cache_usage_perc": "kvCacheUsage",
      "vllm:gpu_cache_usage_perc": "kvCacheUsage", // its older name
    },
  },
  sglang: {
    ttft: ["sglang:time_to_first_token_seconds"],
    gauges: {
      "sglang:num_running_reqs": "running",
      "sglang:num_queue_reqs": "waiting",
      "sglang:token_usage": "kvCacheUsage",
    },
  },
  tgi: {
    ttft: [],
    gauges: {
      "tgi_queue_size": "queueSize",
      "tgi_batch_current_size": "batchSize",
    },
  },
};

/**
 * Reads the wanted samples from Prometheus text: values of one name are
 * summed over label sets. Malformed lines are skipped, never thrown on.
 */
export function sumSamples(
  text: string,
  names: ReadonlySet<string>,
  maxNames: ReadonlySet<string> = new Set(),
): Map<string, number> {
  const out = new Map<string, number>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const nameEnd = line.search(/[{\s]/);
    if (nameEnd <= 0) continue;
    const name = line.slice(0, nameEnd);
    if (!names.has(name)) continue;
    let rest = line.slice(nameEnd);
    if (rest.startsWith("{")) {
      const close = labelsEnd(rest);
      if (close < 0) continue;
      rest = rest.slice(close + 1);
    }
    const token = rest.trim().split(/\s+/)[0];
    const value = token === "+Inf"
      ? Infinity
      : token === "-Inf"
      ? -Infinity
      : Number(token);
    if (token === "" || Number.isNaN(value)) continue;
    const prev = out.get(name);
    if (prev === undefined) out.set(name, value);
    else if (maxNames.has(name)) out.set(name, Math.max(prev, value));
    else out.set(name, prev + value);
  }
  return out;
}

/** Index of the `}` closing a label block, honouring quoted values. */
function labelsEnd(s: string): number {
  let quoted = false;
  for (let i = 1; i < s.length; i++) {
    const c = s[i];
    if (quoted) {
      if (c === "\\") i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === "}") return i;
  }
  return -1;
}

/** Turns an engine's metrics text into a snapshot (without `scrapedAt`). */
export function parseEngineMetrics(
  text: string,
  kind: EngineKind,
): EngineSnapshot {
  const series = SERIES[kind];
  const names = new Set(Object.keys(series.gauges));
  const maxNames = new Set<string>();
  for (const [name, field] of Object.entries(series.gauges)) {
    if (MAX_FIELDS.has(field)) maxNames.add(name);
  }
  for (const h of series.ttft) names.add(`${h}_sum`).add(`${h}_count`);
  const values = sumSamples(text, names, maxNames);
  const snap: EngineSnapshot = {};
  for (const [name, field] of Object.entries(series.gauges)) {
    const v = values.get(name);
    if (v !== undefined && snap[field] === undefined) {
      (snap as Record<string, number>)[field] = v;
    }
  }
  for (const h of series.ttft) {
    const sum = values.get(`${h}_sum`);
    const count = values.get(`${h}_count`);
    if (sum !== undefined && count !== undefined && count > 0) {
      snap.ttftSeconds = sum / count;
    }
  }
  if (kind === "tgi") {
    snap.running = snap.batchSize;
    snap.waiting = snap.queueSize;
    if (snap.running === undefined) delete snap.running;
    if (snap.waiting === undefined) delete snap.waiting;
  }
  return snap;
}

/**
 * Polls an engine's `/metrics` in the background. A missing or failing
 * endpoint is logged once per outage and never throws.
 *
 * @example
 * ```ts
 * import { EngineMetricsScraper } from "./engine_metrics.ts";
 * const scraper = new EngineMetricsScraper({
 *   url: "http://127.0.0.1:18000/metrics", intervalMs: 2000, kind: "vllm",
 * });
 * scraper.start();
 * scraper.snapshot().running;
 * await scraper.close();
 * ```
 */
export class EngineMetricsScraper {
  #options: EngineMetricsOptions;
  #snapshot: EngineSnapshot = {};
  #loop: Promise<void> | undefined;
  #abort = new AbortController();
  #closed = false;
  #failing = false;
  #lastOk: number | undefined;

  /** Creates a scraper; call {@linkcode EngineMetricsScraper.start}. */
  constructor(options: EngineMetricsOptions) {
    this.#options = options;
  }

  /** Scrapes now, then every `intervalMs`. */
  start(): void {
    if (!this.#closed) this.#loop ??= this.#run();
  }

  /** Latest figures (a copy). */
  snapshot(): EngineSnapshot {
    return { ...this.#snapshot };
  }

  /** Scrapes once and returns the new snapshot (also used by the loop). */
  async scrape(): Promise<EngineSnapshot> {
    const { url, kind, intervalMs } = this.#options;
    const timeoutMs = this.#options.timeoutMs ?? Math.min(intervalMs, 5000);
    try {
      const res = await fetch(url, {
        signal: AbortSignal.any([
          this.#abort.signal,
          AbortSignal.timeout(timeoutMs),
        ]),
      });
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status}`);
      }
      const text = await res.text();
      this.#lastOk = Date.now();
      this.#snapshot = {
        ...parseEngineMetrics(text, kind),
        scrapedAt: this.#lastOk,
      };
      if (this.#failing) {
        this.#failing = false;
        logger.info("Engine metrics at {url} are back", { url });
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.#snapshot = { error: message, scrapedAt: this.#lastOk };
      if (this.#snapshot.scrapedAt === undefined) {
        delete this.#snapshot.scrapedAt;
      }
      if (!this.#failing && !this.#closed) {
        this.#failing = true;
        logger.warn("Cannot scrape engine metrics at {url}: {error}", {
          url,
          error: message,
        });
      }
    }
    try {
      this.#options.onSnapshot?.(this.#snapshot);
    } catch (error) {
      logger.error("Engine snapshot listener failed: {error}", { error });
    }
    return this.snapshot();
  }

  /** Stops the loop and aborts a scrape in flight. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    await this.#loop;
  }

  // One scrape at a time, each one interval after the last one ended.
  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      await this.scrape();
      await delay(this.#options.intervalMs, { signal }).catch(() => {});
    }
  }
}
