/**
 * What supervisord's own log says about the model server's program.
 *
 * On Vast's base image supervisord writes its process events to
 * `/var/log/supervisor/supervisord.log` (`logfile=` in `supervisord.conf`),
 * not to the program's log, as `<time> <LEVEL> <message>`
 * (supervisor/process.py, 4.x):
 * - `WARN exited: vllm (exit status 1; not expected)`: an unexpected exit
 *   (supervisor 3 logged it at `INFO`); `INFO exited: vllm (exit status 0;
 *   expected)`: an expected one, e.g. the base image's `Refusing to start
 *   vllm (VLLM_MODEL not set)`, after which it is not restarted.
 * - `INFO gave up: vllm entered FATAL state, too many start retries too
 *   quickly`: no restart will follow.
 * - `stopped: vllm (terminated by SIGTERM)` is an asked-for stop: ignored.
 *
 * Only lines naming the preset's program count: the same log carries every
 * other program's (jupyter, caddy, the pyworker itself ...).
 *
 * @module
 */
import type { LogActions } from "./log_monitor.ts";

/** supervisord's log on Vast's base image (`EDGEWORKER_SUPERVISOR_LOG`). */
export const DEFAULT_SUPERVISOR_LOG = "/var/log/supervisor/supervisord.log";

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/**
 * Patterns for `program`'s lines in supervisord's log: an exit is a startup
 * error (fatal before the first ready, counted after, while supervisord
 * restarts it), giving up is fatal.
 *
 * @example
 * ```ts
 * import { supervisorActions } from "./supervisor_log.ts";
 * const { onStartupError } = supervisorActions("vllm");
 * const line = "2026-12-01 22:55:01,123 WARN exited: vllm (exit status 1; not expected)";
 * console.log(onStartupError?.some((p) => (p as RegExp).test(line))); // true
 * ```
 */
export function supervisorActions(program: string): LogActions {
  const name = escapeRegExp(program);
  return {
    onError: [
      new RegExp(`\\b(?:INFO|WARN) gave up: ${name} entered FATAL state\\b`),
    ],
    onStartupError: [
      new RegExp(`\\b(?:INFO|WARN|CRIT) exited: ${name} \\(`),
    ],
  };
}
