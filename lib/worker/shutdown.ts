/**
 * Graceful shutdown: stop admitting, let in-flight requests finish up to the
 * drain time, cancel the rest, flush the last reports, stop everything.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { deadline, delay } from "../std/async.ts";
import type { Ledger } from "../traffic/ledger.ts";
import type { Lifecycle } from "../model/lifecycle.ts";
import type { WorkerMetrics } from "../metrics/worker_metrics.ts";
import type { Reporter } from "../autoscaler/reporter.ts";
import type { SessionStore } from "../traffic/sessions.ts";

const log = getLogger(["edgeworker", "worker"]);

/** Longest wait for the final reports: Vast's supervisor waits 10 s. */
export const FINAL_REPORT_MS = 5000;

/** What a shutdown stops, in order. */
export interface ShutdownParts {
  lifecycle: Lifecycle;
  ledger: Ledger;
  sessions: SessionStore;
  /** Aborts every request still in flight when the drain time is over. */
  stop: AbortController;
  drainMs: number;
  /** Stopped before the drain: nothing may change the state meanwhile. */
  watchers: () => Promise<void>;
  /** Stopped after the drain, in order (servers, scrapers). */
  closers: (() => Promise<void>)[];
  reporter?: Reporter;
  metrics: WorkerMetrics;
}

/** `shutdown(reason)` (idempotent) and a promise of its end. */
export function gracefulShutdown(
  parts: ShutdownParts,
): { shutdown: (reason?: string) => Promise<void>; finished: Promise<void> } {
  const { promise: finished, resolve } = Promise.withResolvers<void>();
  let stopping: Promise<void> | undefined;
  const shutdown = (reason = "shutdown requested"): Promise<void> => {
    stopping ??= run(parts, reason).then(resolve);
    return stopping;
  };
  return { shutdown, finished };
}

async function run(parts: ShutdownParts, reason: string): Promise<void> {
  const { lifecycle, ledger, sessions, reporter } = parts;
  // Draining answers new requests 503 and is reported at once.
  lifecycle.to("draining", reason);
  await parts.watchers();
  const drainEnd = Date.now() + parts.drainMs;
  // Sessions hold a record for their lifetime: they do not count as work.
  while (ledger.inFlightCount > sessions.size && Date.now() < drainEnd) {
    await delay(50);
  }
  const left = ledger.inFlightCount - sessions.size;
  if (left > 0) {
    log.warn("Drain time over: cancelling {left} requests", { left });
  }
  parts.stop.abort(new Error("worker shutting down"));
  await sessions.shutdown();
  for (const close of parts.closers) await close();
  // Last reports get a bounded time: an unreachable autoscaler must not hold
  // the exit past the supervisor's patience.
  if (reporter) {
    await deadline(reporter.flush(), FINAL_REPORT_MS).catch(() => {});
  }
  await reporter?.close();
  parts.metrics.close();
  log.info("Worker stopped");
}
