/** Capturing the worker's log records in a test. */
import { configure, type LogRecord, reset } from "@logtape/logtape";

/** Log records captured until disposed (`await using`). */
export interface CapturedLogs extends AsyncDisposable {
  /** Every record of the category so far, in order. */
  readonly records: LogRecord[];
}

/**
 * Sends every record of `category` (and its children) from debug up to
 * {@linkcode CapturedLogs.records}, replacing any logging set-up; disposing
 * resets logging.
 */
export async function captureLogs(
  category: string[] = ["edgeworker"],
): Promise<CapturedLogs> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { capture: (r: LogRecord) => records.push(r) },
    loggers: [
      { category, sinks: ["capture"], lowestLevel: "debug" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "error" },
    ],
  });
  return { records, [Symbol.asyncDispose]: () => reset() };
}
