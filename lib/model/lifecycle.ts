/**
 * The worker's state machine: starting → loading → benchmarking → ready,
 * error from anywhere, draining at shutdown. Nothing else flips "ready".
 * A ready worker may be degraded by named checks (health URL, generation
 * canary): it is in error while any of them fails and ready again once all
 * pass, and such a recovery keeps `loadtime` (Python's loadtime is the time
 * to the model's load, never to a recovery).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";

/** Every state of the worker, in order (`edgeworker_lifecycle_state` shows each). */
export const LIFECYCLE_STATES = [
  "starting",
  "loading",
  "benchmarking",
  "ready",
  "error",
  "draining",
] as const;

/** One of {@linkcode LIFECYCLE_STATES}. */
export type LifecycleState = typeof LIFECYCLE_STATES[number];

/** A transition as listeners see it. */
export interface Transition {
  from: LifecycleState;
  to: LifecycleState;
  cause: string;
  /** Seconds since the process started. */
  at: number;
}

const log = getLogger(["edgeworker", "lifecycle"]);

/**
 * Holds the current state, the error message and the load time.
 *
 * @example
 * ```ts
 * import { Lifecycle } from "./lifecycle.ts";
 * const life = new Lifecycle();
 * life.to("loading", "watching the model log");
 * ```
 */
export class Lifecycle {
  #state: LifecycleState = "starting";
  #errorMsg = "";
  #fatal = false;
  #loadtime = 0;
  #startedAt: number;
  #now: () => number;
  #listeners = new Set<(t: Transition) => void>();
  // Failing checks of a ready worker, by name, with their messages.
  #degraded = new Map<string, string>();
  #changeListeners = new Set<() => void>();

  /** Starts in `starting`; `startedAt` is the process start (unix ms). */
  constructor(options: { startedAt?: number; now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
    this.#startedAt = options.startedAt ?? this.#now();
  }

  /** The current state. */
  get state(): LifecycleState {
    return this.#state;
  }

  /** The error message ("" unless in error). */
  get errorMsg(): string {
    return this.#errorMsg;
  }

  /** Whether the error came from a fatal log line (no recovery). */
  get fatal(): boolean {
    return this.#fatal;
  }

  /**
   * Seconds since the process started while it has not been ready yet
   * (starting, loading, benchmarking, or an error before the first ready);
   * null once it has been ready.
   */
  get loadingSeconds(): number | null {
    if (this.#loadtime > 0 || this.#state === "draining") return null;
    return (this.#now() - this.#startedAt) / 1000;
  }

  /** Seconds from process start to the last time it became ready (0 before). */
  get loadtime(): number {
    return this.#loadtime;
  }

  /** Whether requests should be sent here. */
  get ready(): boolean {
    return this.#state === "ready";
  }

  /**
   * Listens to every change the autoscaler must hear of: transitions and a
   * new error message while already in error. Returns the remover.
   */
  onChange(listener: () => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  /** Listens to transitions; returns the remover. */
  subscribe(listener: (t: Transition) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Names of the checks that keep a ready worker in error now. */
  get degradedBy(): string[] {
    return [...this.#degraded.keys()];
  }

  /**
   * Check `source` fails: a ready (or already degraded) worker goes to
   * error with `message` until every failing check is restored. Ignored in
   * any other state (loading, a fatal error, draining). Returns whether it
   * took effect.
   */
  degrade(source: string, message: string): boolean {
    const degraded = this.#state === "error" && this.#degraded.size > 0;
    if (this.#state !== "ready" && !degraded) return false;
    this.#degraded.set(source, message);
    return this.#failWith(message, false);
  }

  /**
   * Check `source` passes again. Once no check fails, the worker is ready
   * again (its `loadtime` kept); while others fail, their message stays.
   */
  restore(source: string): boolean {
    if (!this.#degraded.delete(source)) return false;
    if (this.#state !== "error") return false;
    const left = [...this.#degraded.values()];
    if (left.length > 0) return this.#failWith(left[0], false);
    return this.#move("ready", `${source} passes again`, false);
  }

  /**
   * Moves to `to` for `cause`. A fatal error and draining are final: later
   * moves are ignored. Returns whether the state changed. Becoming ready
   * sets `loadtime` (the model loaded, or loaded again after a restart).
   */
  to(to: LifecycleState, cause: string): boolean {
    return this.#move(to, cause, true);
  }

  #move(to: LifecycleState, cause: string, loaded: boolean): boolean {
    if (this.#state === to || this.#state === "draining") return false;
    if (this.#state === "error" && this.#fatal && to !== "draining") {
      return false;
    }
    // Any other way out of a degraded error forgets the failing checks.
    if (loaded) this.#degraded.clear();
    const from = this.#state;
    this.#state = to;
    const at = (this.#now() - this.#startedAt) / 1000;
    if (to === "ready") {
      if (loaded) this.#loadtime = at;
      this.#errorMsg = "";
    }
    if (to !== "error" && to !== "draining") this.#errorMsg = "";
    const level = to === "error" ? "error" : "info";
    log[level]("State {from} -> {to} after {at}s: {cause}", {
      from,
      to,
      at: at.toFixed(2),
      cause,
    });
    for (const listener of this.#listeners) listener({ from, to, cause, at });
    for (const l of this.#changeListeners) l();
    return true;
  }

  /** Enters `error` with `message`; fatal errors never recover. */
  fail(message: string, options: { fatal?: boolean } = {}): boolean {
    // An error of its own is no longer a degradation a check can undo.
    this.#degraded.clear();
    return this.#failWith(message, options.fatal ?? false);
  }

  #failWith(message: string, fatal: boolean): boolean {
    if (this.#state === "error" && this.#fatal) return false;
    if (this.#state === "draining") return false;
    this.#fatal = fatal;
    const changed = this.#state !== "error" || this.#errorMsg !== message;
    if (this.#state === "error") {
      this.#errorMsg = message;
      if (changed) { for (const l of this.#changeListeners) l(); }
      return changed;
    }
    this.#errorMsg = message;
    const from = this.#state;
    this.#state = "error";
    const at = (this.#now() - this.#startedAt) / 1000;
    log.error("State {from} -> error after {at}s: {cause}", {
      from,
      at: at.toFixed(2),
      cause: message,
    });
    for (const l of this.#listeners) {
      l({ from, to: "error", cause: message, at });
    }
    for (const l of this.#changeListeners) l();
    return true;
  }
}
