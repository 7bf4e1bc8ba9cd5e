/**
 * Log output of the worker process: LogTape to stderr, as text or JSON
 * lines. Library modules only call `getLogger`; this runs once in `main`.
 *
 * Text lines are for people: values appear as they are
 * (`State starting -> loading after 0.33s`), not quoted and escaped as
 * `Deno.inspect` writes them, and every record stays on one line (line
 * breaks and control characters inside a value are escaped). The JSON
 * format is for machines.
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
  type TextFormatter,
} from "@logtape/logtape";

/** Options of {@linkcode setupLogging}. */
export interface LoggingOptions {
  /** @default {"info"} */
  level?: "debug" | "info" | "warning" | "error";
  /** @default {"text"} */
  format?: "text" | "json";
}

/** Escapes for the characters that would break a line or drive a terminal. */
// deno-lint-ignore no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function escapeControls(text: string): string {
  return text.replace(
    CONTROL,
    (c) => NAMED[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * How one value reads in a text line: a string as is (an empty one as
 * `""`, so a missing cause is still visible), a number bare with at most
 * three decimals (`0.331`; the JSON format keeps every digit), a bigint's
 * digits without the `n`, a boolean
 * bare, an error as `Name: message`, anything else compact on one line.
 */
export function renderLogValue(
  value: unknown,
  inspect: (value: unknown) => string = (v) =>
    Deno.inspect(v, { compact: true, breakLength: Infinity, colors: false }),
): string {
  if (typeof value === "string") {
    return value === "" ? '""' : escapeControls(value);
  }
  if (typeof value === "number") return readableNumber(value);
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Error) {
    return escapeControls(`${value.name}: ${value.message}`);
  }
  return escapeControls(inspect(value));
}

/** A number for people: integers whole, others to three decimals (tiny ones to three digits). */
function readableNumber(x: number): string {
  if (!Number.isFinite(x) || Number.isInteger(x)) return String(x);
  if (Math.abs(x) < 0.001) return String(Number(x.toPrecision(3)));
  return String(Number(x.toFixed(3)));
}

/** The text formatter: `2026-12-01 22:51:38.123 +00:00 [INF] edgeworker·worker: ...`. */
export const textFormatter: TextFormatter = getTextFormatter({
  timestamp: "date-time-tz",
  value: (v) => renderLogValue(v),
});

/** Configures LogTape for the process (idempotent). */
export async function setupLogging(
  options: LoggingOptions = {},
): Promise<void> {
  const level: LogLevel = options.level ?? "info";
  const formatter = options.format === "json"
    ? jsonLinesFormatter
    : textFormatter;
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
