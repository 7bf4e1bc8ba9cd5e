/**
 * The health part of `/metrics`: the three health levels, the generation
 * canary's runs, the stall detector's streams and the startup timeline.
 * Everything is read from `sources` at scrape time; the page is appended
 * to {@linkcode WorkerMetrics}'s (its families never repeat there).
 *
 * @module
 */
import type { LevelStatus } from "../model/health_levels.ts";
import type { CanaryStats } from "../model/canary.ts";
import type { TimelineView } from "../model/timeline.ts";
import type { StallCounts } from "../traffic/ticket.ts";
import { TextWriter } from "./prometheus_text.ts";

/** Read-at-scrape inputs. */
export interface HealthMetricsSources {
  levels: () => { engine: LevelStatus; generation: LevelStatus };
  /** Undefined when no canary runs. */
  canary: () => CanaryStats | undefined;
  /** Undefined when the stall detector is off. */
  stalls: () => Readonly<StallCounts> | undefined;
  timeline: () => TimelineView;
}

/** The exposition text of the health families. */
export function renderHealthMetrics(s: HealthMetricsSources): string {
  const w = new TextWriter();
  const up = "edgeworker_health_up";
  w.family(
    up,
    "gauge",
    "1 if a health level passes, 0 if it fails (alive; engine: the health URL; generation: the canary). Levels not checked or not yet known are left out.",
  );
  w.sample(up, { level: "alive" }, 1);
  for (const [level, status] of Object.entries(s.levels())) {
    if (status === "ok" || status === "failing") {
      w.sample(up, { level }, status === "ok" ? 1 : 0);
    }
  }
  const canary = s.canary();
  if (canary) {
    const runs = "edgeworker_canary_runs_total";
    w.family(runs, "counter", "Generation canaries by result.");
    w.sample(runs, { result: "passed" }, canary.passed);
    w.sample(runs, { result: "failed" }, canary.failed);
    w.sample(runs, { result: "skipped" }, canary.skipped);
    if (canary.last_seconds !== null) {
      w.single(
        "edgeworker_canary_last_duration_seconds",
        "gauge",
        "Seconds the last generation canary took.",
        canary.last_seconds,
      );
    }
  }
  const stalls = s.stalls();
  if (stalls) {
    w.single(
      "edgeworker_streams_stalled",
      "gauge",
      "Answers under way that relayed no byte for the stall time.",
      stalls.now,
    );
    w.single(
      "edgeworker_streams_stalled_total",
      "counter",
      "Answers that stalled since start.",
      stalls.total,
    );
    w.single(
      "edgeworker_streams_stall_aborted_total",
      "counter",
      "Stalled answers aborted (EDGEWORKER_STALL_ABORT).",
      stalls.aborted,
    );
  }
  const phases = s.timeline().phases.filter((p) => p.seconds !== null);
  if (phases.length > 0) {
    const name = "edgeworker_startup_phase_seconds";
    w.family(name, "gauge", "Seconds each startup phase took.");
    for (const p of phases) w.sample(name, { phase: p.phase }, p.seconds!);
  }
  return w.text();
}
