/**
 * The worker's state machine: starting → loading → benchmarking → ready,
 * error from anywhere, draining at shutdown. Nothing else flips "ready".
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

  /**
   * Moves to `to` for `cause`. A fatal error and draining are final: later
   * moves are ignored. Returns whether the state changed.
   */
  to(to: LifecycleState, cause: string): boolean {
    if (this.#state === to || this.#state === "draining") return false;
    if (this.#state === "error" && this.#fatal && to !== "draining") {
      return false;
    }
    const from = this.#state;
    this.#state = to;
    const at = (this.#now() - this.#startedAt) / 1000;
    if (to === "ready") {
      this.#loadtime = at;
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
    if (this.#state === "error" && this.#fatal) return false;
    if (this.#state === "draining") return false;
    this.#fatal = options.fatal ?? false;
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
