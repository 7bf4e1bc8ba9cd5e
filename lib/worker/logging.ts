/**
 * Log output of the worker process: LogTape to stderr, as text or JSON
 * lines. Library modules only call `getLogger`; this runs once in `main`.
 *
 * @module
 */
import {
  configure,
  dispose,
  getConsoleSink,
  getTextFormatter,
  jsonLinesFormatter,
  type LogLevel,
} from "@logtape/logtape";

/** Options of {@linkcode setupLogging}. */
export interface LoggingOptions {
  /** @default {"info"} */
  level?: "debug" | "info" | "warning" | "error";
  /** @default {"text"} */
  format?: "text" | "json";
}

/** Configures LogTape for the process (idempotent). */
export async function setupLogging(
  options: LoggingOptions = {},
): Promise<void> {
  const level: LogLevel = options.level ?? "info";
  const formatter = options.format === "json"
    ? jsonLinesFormatter
    : getTextFormatter({ timestamp: "date-time-tz" });
  await configure({
    reset: true,
    sinks: { console: getConsoleSink({ formatter, nonBlocking: true }) },
    loggers: [
      { category: ["edgeworker"], lowestLevel: level, sinks: ["console"] },
      {
        category: ["logtape", "meta"],
        lowestLevel: "warning",
        sinks: ["console"],
      },
    ],
  });
}

/** Flushes and closes log sinks (before exit). */
export async function closeLogging(): Promise<void> {
  await dispose();
}
