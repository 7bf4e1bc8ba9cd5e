/**
 * Giving memory back to the OS once a burst of requests is over. After
 * load the worker's RSS stays near its peak (measured: 161 MB after 5 s at
 * c=32, 75 MB idle) although its live JS heap is back to the idle size:
 * V8 keeps the young generation it grew and the pages it freed, and glibc
 * keeps the blocks the runtime freed (request and response buffers) in its
 * arenas. Deno has one switch for both: started with
 * `DENO_USR2_MEMORY_TRIM` set (any value; templates/start.sh and the
 * `start`/`dev` tasks set it), it answers SIGUSR2 with `malloc_trim(0)` and
 * a V8 low-memory notification, a full GC that shrinks the heap (deno
 * `runtime/worker.rs`). That brought the 161 MB back to 80 MB. The worker
 * sends that signal to itself; without the variable the signal would end
 * the process, so nothing is sent then.
 *
 * It looks every `intervalMs` (an unref'd timer). A look is quiet when no
 * request is in flight and none came since the last look. After start-up it
 * trims at the 1st and 3rd quiet look; after requests only once they have
 * been quiet for a long while (the 15th and 17th quiet look in a row, 30 s
 * and 34 s at the default interval). Two trims because Deno trims before
 * that GC, so what the GC frees goes at the next one. Rarely, because the
 * low-memory GC also shrinks the young generation and lets V8 drop compiled
 * code, so the next requests run colder (measured: with a trim in every
 * pause between the bench's 1 s runs, twice the CPU per request), and under
 * load freed memory is soon used again. Linux only.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";

const log = getLogger(["edgeworker", "memory"]);

/** Options of {@linkcode MemoryTrim}. */
export interface MemoryTrimOptions {
  /** `DENO_USR2_MEMORY_TRIM` as the process was started (set: any value). */
  usr2Trim: string | undefined;
  /** Whether requests are in flight now. */
  busy?: () => boolean;
  /** A count that grows with every request (the ledger's received count). */
  activity?: () => number;
  /** Milliseconds between two looks. @default {2000} */
  intervalMs?: number;
}

/** The quiet looks in a row after start-up that trim. */
const AFTER_START = [1, 3];
/** The quiet looks in a row after requests that trim. */
const AFTER_REQUESTS = [15, 17];

/** Trims after activity, when quiet (see the module note). */
export class MemoryTrim {
  /** Whether trims can be made here (Linux, `DENO_USR2_MEMORY_TRIM` set). */
  readonly enabled: boolean;
  #busy: () => boolean;
  #activity: () => number;
  #intervalMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #seen = 0;
  /** Quiet looks in a row since the last activity; -1: none to trim after. */
  #quiet = -1;
  #trimAt = AFTER_START;
  #trims = 0;
  // A listener of our own: if the runtime's SIGUSR2 handler is not there
  // (not installed yet, or a runtime without it), the signal is caught
  // here instead of ending the process.
  #guard = () => {};

  /** Nothing runs before {@linkcode start}. */
  constructor(options: MemoryTrimOptions) {
    this.enabled = Deno.build.os === "linux" &&
      options.usr2Trim !== undefined;
    this.#busy = options.busy ?? (() => false);
    this.#activity = options.activity ?? (() => 0);
    this.#intervalMs = options.intervalMs ?? 2000;
  }

  /** Trims made so far. */
  get trims(): number {
    return this.#trims;
  }

  /** Starts looking every `intervalMs`. */
  start(): void {
    if (!this.enabled || this.#timer !== undefined) return;
    // Start-up counts as activity: its garbage goes at the first looks.
    this.#seen = this.#activity();
    this.#quiet = 0;
    this.#trimAt = AFTER_START;
    Deno.addSignalListener("SIGUSR2", this.#guard);
    const timer = setInterval(() => this.look(), this.#intervalMs);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /** One look: trims at the quiet looks of the schedule (module note). */
  look(): void {
    if (this.#timer === undefined) return;
    const seen = this.#activity();
    if (this.#busy() || seen !== this.#seen) {
      this.#seen = seen;
      this.#quiet = 0;
      this.#trimAt = AFTER_REQUESTS;
      return;
    }
    if (this.#quiet < 0) return;
    this.#quiet++;
    if (!this.#trimAt.includes(this.#quiet)) return;
    if (this.#quiet === this.#trimAt.at(-1)) this.#quiet = -1;
    try {
      Deno.kill(Deno.pid, "SIGUSR2");
    } catch (e) {
      // Signalling needs --allow-run (any program): without it, no trims.
      log.warn("Cannot give memory back to the OS: {error}", {
        error: e instanceof Error ? e.message : String(e),
      });
      this.close();
      return;
    }
    this.#trims++;
  }

  /** Stops looking. */
  close(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    Deno.removeSignalListener("SIGUSR2", this.#guard);
  }
}
