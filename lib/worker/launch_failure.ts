/**
 * The one launch-failure path: a worker that cannot start (bad config, TLS
 * files, port taken) tells the autoscaler why instead of going silent,
 * once (the command exits) or until the supervisor stops it.
 *
 * @module
 */
import {
  reportLaunchFailure,
  runLaunchFailureBeacon,
} from "../autoscaler/wire.ts";
import {
  reportAddresses,
  reportIdentity,
  type WorkerEnv,
} from "../config/env.ts";

/** How long a launch failure is reported. */
export type LaunchFailureMode =
  /** One report to every address (the process exits next). */
  | "once"
  /** Every 10 s until SIGTERM/SIGINT: a crash loop would report nothing. */
  | "until-signal";

/** Reports `message` (why the worker cannot start) to every `REPORT_ADDR`. */
export async function announceLaunchFailure(
  env: WorkerEnv,
  message: string,
  mode: LaunchFailureMode,
): Promise<void> {
  const reportAddrs = reportAddresses(env);
  if (reportAddrs.length === 0) return;
  const identity = reportIdentity(env);
  if (mode === "once") {
    await reportLaunchFailure({
      reportAddrs,
      identity,
      errorMsg: message,
      signal: AbortSignal.timeout(10_000),
      timeoutMs: 5000,
    });
    return;
  }
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    await runLaunchFailureBeacon({
      reportAddrs,
      identity,
      errorMsg: message,
      signal: stop.signal,
    });
  } finally {
    Deno.removeSignalListener("SIGTERM", onSignal);
    Deno.removeSignalListener("SIGINT", onSignal);
  }
}
