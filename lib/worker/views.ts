/**
 * What the worker shows about itself, built from its parts: the `/status`
 * page, the health families of `/metrics`, and the dashboard's feed.
 *
 * @module
 */
import { withoutSecrets } from "../auth/redact.ts";
import type { WorkerEnv } from "../config/env.ts";
import type { DashboardDeps } from "../http/dashboard_route.ts";
import { DashboardFeed } from "../metrics/dashboard_feed.ts";
import { renderHealthMetrics } from "../metrics/health_metrics.ts";
import type { WorkerParts } from "./parts.ts";

/** `GET /status`: shown without authentication, so every secret is dropped. */
export function statusOf(p: WorkerParts): unknown {
  return withoutSecrets({
    state: p.lifecycle.state,
    error_msg: p.lifecycle.errorMsg,
    loadtime: p.lifecycle.loadtime,
    loading_seconds: p.lifecycle.loadingSeconds,
    max_perf: p.capacity.benchmark,
    live_throughput: p.capacity.live ?? null,
    in_flight: p.ledger.inFlightCount,
    queued: p.queues.waiting,
    queue_workload: p.ledger.queueWorkload,
    sessions: p.sessions.size,
    resumable: p.resumable.stats,
    last_report: p.reporter?.lastStatus ?? null,
    engine: p.engine?.snapshot() ?? null,
    health: p.levels.view(),
    canary: p.canary?.stats ?? null,
    stalls: p.admission.stall
      ? { ...p.admission.stall, ...p.admission.stalls }
      : null,
    startup: p.timeline.view(),
  });
}

/** The health families of `/metrics` (levels, canary, stalls, startup). */
export function healthMetricsOf(p: WorkerParts): string {
  return renderHealthMetrics({
    levels: () => p.levels.statuses(),
    canary: () => p.canary?.stats,
    stalls: () => p.admission.stall ? p.admission.stalls : undefined,
    timeline: () => p.timeline.view(),
  });
}

/** `GET /dashboard`'s parts: the feed follows the ledger from now on. */
export function dashboardOf(
  p: WorkerParts,
  env: WorkerEnv,
): DashboardDeps {
  const feed = new DashboardFeed(p.ledger, {
    id: env.CONTAINER_ID,
    url: p.publicUrl,
    state: () => p.lifecycle.state,
    errorMsg: () => p.lifecycle.errorMsg,
    maxPerf: () => p.capacity.benchmark,
    queued: () => p.queues.waiting,
  });
  const title = `edgeworker worker ${env.CONTAINER_ID} (${p.publicUrl})`;
  return { token: env.MASTER_TOKEN, title, view: () => feed.view(title) };
}
