/**
 * Byte-exact reproduction of Python's `json.dumps(obj, indent=4, sort_keys=True)`.
 *
 * The autoscaler signs text made by Python, so the worker has to rebuild the
 * same bytes. Two things differ from `JSON.stringify`: Python escapes every
 * non-ASCII character (`ensure_ascii=True`), and Python keeps the int/float
 * distinction (`1000` vs `1000.0`) that `JSON.parse` throws away. To keep it,
 * {@linkcode parseJsonKeepingNumbers} wraps every number in a
 * {@linkcode JsonNumber} that remembers its source text.
 *
 * @module
 */

/** A JSON number together with the exact text it was written as. */
export class JsonNumber {
  /** The value as JavaScript reads it (may have lost precision). */
  readonly value: number;
  /** The literal as it appeared in the JSON text, e.g. `"1000.0"` or `"1e3"`. */
  readonly source: string;

  /** Wraps a parsed number and its source text. */
  constructor(value: number, source: string) {
    this.value = value;
    this.source = source;
  }
}

/**
 * Parses JSON text like `JSON.parse`, but every number becomes a
 * {@linkcode JsonNumber} holding its source text, so it can later be printed
 * the way Python would re-serialize it. Strings, booleans, null, arrays and
 * objects are returned as plain values.
 *
 * @throws {SyntaxError} when the text is not valid JSON.
 */
export function parseJsonKeepingNumbers(text: string): unknown {
  // The reviver's third argument carries the literal's source (V8 "JSON.parse
  // source text access"); it is only given for primitive values.
  return JSON.parse(
    text,
    (_key, value: unknown, context?: { source?: string }) =>
      typeof value === "number" && context?.source !== undefined
        ? new JsonNumber(value, context.source)
        : value,
  );
}

/**
 * Returns `value` with each number replaced by the {@linkcode JsonNumber} at
 * the same place in `raw` (a {@linkcode parseJsonKeepingNumbers} result) when
 * both hold the same value. Lets a caller keep its own validated object as
 * the authority and borrow only the wire spelling of numbers from the raw body.
 */
export function restoreNumberSources(value: unknown, raw: unknown): unknown {
  if (typeof value === "number") {
    return raw instanceof JsonNumber && Object.is(raw.value, value)
      ? raw
      : value;
  }
  if (Array.isArray(value)) {
    const r = Array.isArray(raw) ? raw : [];
    return value.map((v, i) => restoreNumberSources(v, r[i]));
  }
  if (typeof value === "object" && value !== null) {
    const r = (typeof raw === "object" && raw !== null ? raw : {}) as Record<
      string,
      unknown
    >;
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, restoreNumberSources(v, r[k])]),
    );
  }
  return value;
}

/**
 * Python's `repr(float)`: shortest round-trip digits, fixed notation when the
 * decimal exponent is in [-4, 16), scientific with a two-digit signed exponent
 * otherwise, and always a `.0` on whole numbers in fixed notation.
 */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "Infinity" : "-Infinity";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const sign = x < 0 ? "-" : "";
  // toExponential() without an argument gives the shortest round-trip digits,
  // the same digits Python's repr picks.
  const [mantissa, exp] = Math.abs(x).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const n = Number(exp);
  if (n < -4 || n >= 16) {
    const frac = digits.length > 1 ? `.${digits.slice(1)}` : "";
    const e = Math.abs(n).toString().padStart(2, "0");
    return `${sign}${digits[0]}${frac}e${n < 0 ? "-" : "+"}${e}`;
  }
  if (n < 0) return `${sign}0.${"0".repeat(-n - 1)}${digits}`;
  const whole = digits.slice(0, n + 1).padEnd(n + 1, "0");
  const frac = digits.slice(n + 1) || "0";
  return `${sign}${whole}.${frac}`;
}

/**
 * How Python re-serializes a JSON number literal after `json.loads`: a literal
 * without `.`/`e`/`E` is an exact int (`-0` becomes `0`, big ints keep every
 * digit); anything else is a float printed with {@linkcode pythonFloatRepr}.
 *
 * @example `"1e3"` -> `"1000.0"`, `"1.50"` -> `"1.5"`, `"100"` -> `"100"`
 */
export function pythonNumberText(source: string): string {
  if (/^-?\d+$/.test(source)) return BigInt(source).toString();
  return pythonFloatRepr(Number(source));
}

/** A JSON number as Python reads it: `bigint` for an integer beyond 2^53, else `number`. */
export type ExactNumber = number | bigint;

/**
 * The value Python's `json.loads` gives a number literal: a literal without
 * `.`/`e`/`E` is an int, exact at any size (a `bigint` when it is not a safe
 * integer); anything else is a float.
 *
 * @example `"9223372036854775808"` -> `9223372036854775808n`, `"35"` -> `35`, `"1e3"` -> `1000`
 */
export function pythonNumberValue(source: string): ExactNumber {
  if (!/^-?\d+$/.test(source)) return Number(source);
  const n = BigInt(source);
  return n >= Number.MIN_SAFE_INTEGER && n <= Number.MAX_SAFE_INTEGER
    ? Number(n)
    : n;
}

/**
 * Serializes a value exactly like Python's
 * `json.dumps(value, indent=4, sort_keys=True)` with the default
 * `ensure_ascii=True`.
 *
 * Numbers: a {@linkcode JsonNumber} is printed from its source text (exact);
 * a plain `number` is printed as an int when it is an integer and as a Python
 * float otherwise (so pass `JsonNumber`s when `1000.0` must stay `1000.0`);
 * a `bigint` is printed as an int.
 *
 * Object properties whose value is `undefined` are left out, as
 * `JSON.stringify` does.
 *
 * @throws {TypeError} for other values JSON cannot hold (functions, symbols,
 * `undefined` outside an object).
 */
export function pythonJsonDumps(value: unknown): string {
  return dump(value, "");
}

function dump(value: unknown, indent: string): string {
  if (value === null) return "null";
  if (value instanceof JsonNumber) return pythonNumberText(value.source);
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "string":
      return pythonString(value);
    case "bigint":
      return value.toString();
    case "number":
      return Number.isInteger(value)
        ? BigInt(value).toString()
        : pythonFloatRepr(value);
    case "object":
      return Array.isArray(value)
        ? dumpItems(value.map((v) => [null, v]), "[", "]", indent)
        : dumpItems(sortedEntries(value as object), "{", "}", indent);
    default:
      throw new TypeError(
        `Object of type ${typeof value} is not JSON serializable`,
      );
  }
}

function dumpItems(
  items: [string | null, unknown][],
  open: string,
  close: string,
  indent: string,
): string {
  if (items.length === 0) return open + close;
  const inner = indent + "    ";
  const lines = items.map(([key, v]) =>
    inner + (key === null ? "" : pythonString(key) + ": ") + dump(v, inner)
  );
  return `${open}\n${lines.join(",\n")}\n${indent}${close}`;
}

// Python sorts str keys by code point; JS's default sort compares UTF-16 code
// units, which orders astral characters before U+E000..U+FFFF.
function sortedEntries(obj: object): [string, unknown][] {
  return Object.entries(obj)
    .filter(([, v]) => v !== undefined) // as JSON.stringify: undefined means absent
    .sort(([a], [b]) => compareCodePoints(a, b));
}

function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  while (true) {
    const ca = ia.next();
    const cb = ib.next();
    if (ca.done || cb.done) return (ca.done ? 0 : 1) - (cb.done ? 0 : 1);
    const diff = ca.value.codePointAt(0)! - cb.value.codePointAt(0)!;
    if (diff !== 0) return diff;
  }
}

const SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\b": "\\b",
  "\f": "\\f",
};

/**
 * Python's `ensure_ascii` string encoder: everything outside printable ASCII
 * (space..`~`) becomes `\uXXXX` with lowercase hex. JS strings are UTF-16, so
 * astral characters come out as surrogate pairs, exactly as Python writes them.
 */
function pythonString(s: string): string {
  const escaped = s.replace(
    /[\\"]|[^ -~]/g,
    (ch) =>
      SHORT_ESCAPES[ch] ??
        `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return `"${escaped}"`;
}
