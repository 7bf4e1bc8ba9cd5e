/**
 * The startup timeline: when each phase of the first start began and
 * ended (waiting for the model's log file, model loading, the first 200
 * from the health URL, the benchmark and its rounds, the autoscaler's
 * public key, the first client request), for `/status`, `/metrics` and
 * the log. Phases may overlap (in `both` readiness the health probes run
 * while the model loads), so each has its own start and end, in seconds
 * since the process started. Only the first start is kept: a restarted
 * model server's second load shows in the log and in `loadtime`.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Ledger } from "../traffic/ledger.ts";

const log = getLogger(["edgeworker", "startup"]);

/** Every phase, in the order they usually end. */
export const STARTUP_PHASES = [
  "log_file",
  "model_loading",
  "health",
  "benchmark",
  "public_key",
  "first_request",
] as const;

/** One of {@linkcode STARTUP_PHASES}. */
export type StartupPhase = typeof STARTUP_PHASES[number];

/** A phase as `/status` shows it. */
export interface PhaseView {
  phase: StartupPhase;
  /** Seconds since the process started. */
  started_s: number;
  /** Null while it runs. */
  ended_s: number | null;
  /** `ended_s - started_s`; null while it runs. */
  seconds: number | null;
  /** What it waited for or how it ended (`cached`, a URL, a route). */
  detail?: string;
}

/** One benchmark round (the warm-up is not a round). */
export interface RoundView {
  index: number;
  seconds: number;
  ok: number;
  failed: number;
  throughput: number;
}

/** The whole timeline, as `/status` shows it under `startup`. */
export interface TimelineView {
  /** Unix seconds of the process start (what `loadtime` counts from). */
  process_started_at: number;
  phases: PhaseView[];
  benchmark_rounds: RoundView[];
  /** Seconds from the process start to the first time it was ready. */
  ready_s: number | null;
}

interface Phase {
  started: number;
  ended: number | null;
  detail?: string;
}

/**
 * Records phases against one clock.
 *
 * @example
 * ```ts
 * import { StartupTimeline } from "./timeline.ts";
 * const t = new StartupTimeline({ startedAt: Date.now() });
 * t.begin("model_loading", "waiting for the load line");
 * t.end("model_loading");
 * t.view().phases[0].seconds;
 * ```
 */
export class StartupTimeline {
  #startedAt: number;
  #now: () => number;
  #phases = new Map<StartupPhase, Phase>();
  #rounds: RoundView[] = [];
  #ready: number | null = null;

  /** `startedAt`: unix ms of the process start; `now`: the clock (unix ms). */
  constructor(options: { startedAt: number; now?: () => number }) {
    this.#startedAt = options.startedAt;
    this.#now = options.now ?? Date.now;
  }

  /** Starts `phase` now, unless it started before (only the first counts). */
  begin(phase: StartupPhase, detail?: string): void {
    if (this.#phases.has(phase)) return;
    this.#phases.set(phase, {
      started: this.#at(),
      ended: null,
      ...(detail ? { detail } : {}),
    });
  }

  /** Ends `phase` now (begun now if it never began); logs its duration. */
  end(phase: StartupPhase, detail?: string): void {
    this.begin(phase);
    const p = this.#phases.get(phase)!;
    if (p.ended !== null) return;
    p.ended = this.#at();
    if (detail) p.detail = detail;
    log.info("Startup phase {phase} took {s} s{detail}", {
      phase,
      s: (p.ended - p.started).toFixed(3),
      detail: p.detail ? ` (${p.detail})` : "",
    });
  }

  /** Whether `phase` has ended. */
  ended(phase: StartupPhase): boolean {
    return (this.#phases.get(phase)?.ended ?? null) !== null;
  }

  /** A benchmark round finished. */
  round(r: RoundView): void {
    this.#rounds.push(r);
  }

  /**
   * The worker became ready (the first time counts), `at` seconds after the
   * process started (the lifecycle's `loadtime`); logs the summary.
   */
  ready(at: number = this.#at()): void {
    if (this.#ready !== null) return;
    this.#ready = at;
    const parts = this.view().phases.map((p) =>
      `${p.phase} ${p.seconds === null ? "running" : `${p.seconds} s`}`
    );
    log.info("Ready {s} s after the process started: {phases}", {
      s: this.#ready.toFixed(3),
      phases: parts.join(", "),
    });
  }

  /**
   * Times the first client request the model server gets, from sending to
   * its end, then stops listening to `ledger`.
   */
  followFirstRequest(ledger: Ledger): void {
    let first: number | undefined;
    const stop = ledger.subscribe((e) => {
      if (e.record.kind === "session") return;
      if (e.type === "start" && first === undefined) {
        first = e.record.id;
        this.begin("first_request", e.record.route);
      } else if (e.type === "finish" && e.record.id === first) {
        this.end("first_request", `${e.record.status} ${e.record.httpStatus}`);
        stop();
      }
    });
  }

  /** The timeline for `/status`. */
  view(): TimelineView {
    const phases: PhaseView[] = [];
    for (const name of STARTUP_PHASES) {
      const p = this.#phases.get(name);
      if (!p) continue;
      phases.push({
        phase: name,
        started_s: round3(p.started),
        ended_s: p.ended === null ? null : round3(p.ended),
        seconds: p.ended === null ? null : round3(p.ended - p.started),
        ...(p.detail ? { detail: p.detail } : {}),
      });
    }
    return {
      process_started_at: round3(this.#startedAt / 1000),
      phases,
      benchmark_rounds: this.#rounds.map((r) => ({
        ...r,
        seconds: round3(r.seconds),
        throughput: round3(r.throughput),
      })),
      ready_s: this.#ready === null ? null : round3(this.#ready),
    };
  }

  #at(): number {
    return (this.#now() - this.#startedAt) / 1000;
  }
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}
