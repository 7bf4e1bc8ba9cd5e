/**
 * The phase rule of the model server's error lines. An `error` line is
 * fatal at any time. A `startupError` line (a Python traceback, an
 * engine's failed start, supervisord's `exited:` line of the program) is
 * fatal until the worker was first ready, so a failed start is reported at
 * once; after that it is logged and counted and the health check decides
 * (one bad request's traceback must not end a serving worker).
 *
 * A failed start's best message is the exception that caused it: after a
 * traceback's header, or a line such as vLLM's `EngineCore failed to
 * start.` that `logger.exception` follows with one, the exception line
 * (waited for up to {@linkcode TRACEBACK_WAIT_MS}) is the message.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Lifecycle } from "./lifecycle.ts";
import type { LogEvent } from "./log_monitor.ts";

const log = getLogger(["edgeworker", "readiness"]);

/** Which log an error line came from. */
export type LogSource = "model" | "supervisor";

/** Before the worker was first ready, or after. */
export type LogPhase = "startup" | "serving";

/** Longest wait for a traceback's exception line after its header. */
export const TRACEBACK_WAIT_MS = 500;

const TRACEBACK = "Traceback (most recent call last):";
// vLLM prefixes each line of a child process, e.g. `(EngineCore_DP0 pid=7) `.
const PROCESS_TAG = /^\([\w.-]+ pid=\d+\) /;
const SUPERVISOR_TIME = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} /;

/** Options of {@linkcode LogErrors}. */
export interface LogErrorsOptions {
  lifecycle: Lifecycle;
  /** Told of every error line, fatal or counted. */
  onLogError?: (source: LogSource, phase: LogPhase) => void;
}

interface Capture {
  header: string;
  /** The header's own `line()` call has passed. */
  armed: boolean;
  inTraceback: boolean;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Applies the phase rule to `error` and `startupError` events.
 *
 * @example
 * ```ts
 * import { Lifecycle } from "./lifecycle.ts";
 * import { LogErrors } from "./log_errors.ts";
 * const errors = new LogErrors({ lifecycle: new Lifecycle() });
 * errors.event({ kind: "error", line: "EngineDeadError", pattern: "EngineDeadError" }, "model");
 * errors.close();
 * ```
 */
export class LogErrors {
  #o: LogErrorsOptions;
  #everReady = false;
  #capture: Capture | undefined;
  #closed = false;
  #unsubscribe: () => void;

  /** Follows the lifecycle to know whether it has been ready. */
  constructor(options: LogErrorsOptions) {
    this.#o = options;
    this.#unsubscribe = options.lifecycle.subscribe((t) => {
      if (t.to === "ready") this.#everReady = true;
    });
  }

  /** An `error` or `startupError` event from `source` (others: ignored). */
  event(e: LogEvent, source: LogSource): void {
    if (e.kind !== "error" && e.kind !== "startupError") return;
    const { lifecycle } = this.#o;
    const phase: LogPhase = this.#everReady ? "serving" : "startup";
    this.#o.onLogError?.(source, phase);
    // The line is the message (it says what went wrong), without
    // supervisord's timestamp.
    const message = source === "supervisor"
      ? `supervisord: ${e.line.replace(SUPERVISOR_TIME, "")}`
      : e.line;
    if (e.kind === "error") {
      lifecycle.fail(message, { fatal: true });
    } else if (phase === "serving") {
      log.warn(
        "Model server error line after ready (counted; the health check decides): {line}",
        { line: message },
      );
    } else if (source === "model") {
      this.#startCapture(e.line);
    } else {
      lifecycle.fail(message, { fatal: true });
    }
  }

  /** Every line of the model log, after its event (if any). */
  line(line: string): void {
    const c = this.#capture;
    if (!c) return;
    // The first call is for the header itself.
    if (!c.armed) {
      c.armed = true;
      return;
    }
    const text = line.replace(PROCESS_TAG, "");
    if (!c.inTraceback) {
      if (text.startsWith(TRACEBACK)) c.inTraceback = true;
      else this.#failStart(c.header, false);
      return;
    }
    if (text.trim() === "" || /^\s/.test(text) || text.startsWith(TRACEBACK)) {
      return;
    }
    this.#failStart(text.trim());
  }

  /** Drops a pending capture; nothing fails after this. */
  close(): void {
    this.#closed = true;
    this.#endCapture();
    this.#unsubscribe();
  }

  #startCapture(line: string): void {
    if (this.#capture) return;
    const header = line.trim();
    const traceback = header.endsWith(TRACEBACK);
    const timer = setTimeout(
      () => this.#failStart(header, traceback),
      TRACEBACK_WAIT_MS,
    );
    this.#capture = { header, armed: false, inTraceback: traceback, timer };
  }

  /** Fatal: `what` failed the start (`prefix`: say so). */
  #failStart(what: string, prefix = true): void {
    this.#endCapture();
    if (this.#closed) return;
    const message = prefix ? `Model server failed to start: ${what}` : what;
    this.#o.lifecycle.fail(message, { fatal: true });
  }

  #endCapture(): void {
    if (this.#capture) clearTimeout(this.#capture.timer);
    this.#capture = undefined;
  }
}
