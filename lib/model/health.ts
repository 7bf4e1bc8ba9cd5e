/**
 * Probing the model server's health URL: once to learn readiness, and
 * periodically while serving, so a dead model server is noticed within
 * seconds and a recovered one is used again.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { delay } from "../std/async.ts";

const log = getLogger(["edgeworker", "health"]);

/** One probe's result. */
export type ProbeResult = { ok: true } | { ok: false; reason: string };

/** GETs `url` once; ok only for a 2xx within `timeoutMs`. */
export async function probe(
  url: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<ProbeResult> {
  const signals = [AbortSignal.timeout(timeoutMs)];
  if (signal) signals.push(signal);
  try {
    const res = await fetch(url, { signal: AbortSignal.any(signals) });
    await res.body?.cancel();
    return res.ok ? { ok: true } : { ok: false, reason: `HTTP ${res.status}` };
  } catch (e) {
    const name = e instanceof DOMException ? e.name : "";
    if (name === "TimeoutError") {
      return { ok: false, reason: `no answer within ${timeoutMs} ms` };
    }
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  }
}

/** Options of {@linkcode HealthMonitor}. */
export interface HealthMonitorOptions {
  url: string;
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive failures that make the worker unhealthy. */
  failureThreshold: number;
  onUnhealthy: (reason: string) => void;
  onRecovered: () => void;
  /** Told of every probe's result. */
  onProbe?: (result: ProbeResult) => void;
}

/** Probes on an interval and reports transitions between healthy and not. */
export class HealthMonitor {
  #opts: HealthMonitorOptions;
  #failures = 0;
  #unhealthy = false;
  #abort = new AbortController();
  #loop: Promise<void> | undefined;

  /** Creates a stopped monitor. */
  constructor(options: HealthMonitorOptions) {
    this.#opts = options;
  }

  /** Whether the last threshold of probes failed. */
  get unhealthy(): boolean {
    return this.#unhealthy;
  }

  /** Starts probing (first probe after one interval). */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Runs one probe now and applies its result. */
  async check(): Promise<void> {
    const result = await probe(
      this.#opts.url,
      this.#opts.timeoutMs,
      this.#abort.signal,
    );
    if (this.#abort.signal.aborted) return;
    this.#opts.onProbe?.(result);
    if (result.ok) {
      this.#failures = 0;
      if (this.#unhealthy) {
        this.#unhealthy = false;
        log.info("Model server healthy again at {url}", {
          url: this.#opts.url,
        });
        this.#opts.onRecovered();
      }
      return;
    }
    this.#failures++;
    if (!this.#unhealthy && this.#failures >= this.#opts.failureThreshold) {
      this.#unhealthy = true;
      this.#opts.onUnhealthy(
        `Model server health check failed ${this.#failures} times in a row at ${this.#opts.url}: ${result.reason}`,
      );
    }
  }

  /** Stops probing and waits for a probe in flight. */
  async close(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  // One probe at a time, each one interval after the last one ended.
  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      await delay(this.#opts.intervalMs, { signal }).catch(() => {});
      if (!signal.aborted) await this.check();
    }
  }
}
