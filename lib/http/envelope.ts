/**
 * The request envelope `{auth_data, payload, session_id?}`: parsing and the
 * 422 error map that names each bad field, as the Python worker answers.
 *
 * @module
 */
import { z } from "zod";
import { memberTexts } from "../auth/json_members.ts";
import { type ExactNumber, pythonNumberValue } from "../auth/python_json.ts";

/** Deepest JSON nesting accepted; deeper bodies are abuse, not inference. */
export const MAX_JSON_DEPTH = 512;

/**
 * Longest accepted `auth_data` fields, in characters (a number: its text in
 * the body). Real values are far shorter (a url of ~30 characters, an RSA-2048
 * signature of 344); the limits keep what one unauthenticated request can
 * make the worker hash, sign-check or log small.
 */
export const AUTH_DATA_LIMITS: Readonly<Record<string, number>> = Object
  .freeze({
    url: 4096,
    endpoint: 256,
    /** Base64 of an RSA-12288 signature; RSA-8192 needs 1368. */
    signature: 2048,
    /** `cost` as a string. */
    cost: 64,
    /** The text of `cost`, `reqnum` or `request_idx` as a JSON number. */
    number: 64,
  });

const limited = (field: string) =>
  z.string().max(
    AUTH_DATA_LIMITS[field],
    `longer than ${AUTH_DATA_LIMITS[field]} characters`,
  );

/**
 * `auth_data` as `/route/` returns it; extra keys are kept. Numbers are any
 * JSON number, as Python's `AuthData` dataclass (which checks no type) takes
 * them: negative and non-integral ones included; integers of any size are
 * kept exact by {@linkcode parseEnvelope} when given the body text. Unlike
 * Python, a non-number `reqnum`/`request_idx` (which makes Python answer 500)
 * gets 422.
 */
export const AuthDataSchema = z.looseObject({
  cost: z.union([z.number(), limited("cost")]),
  endpoint: limited("endpoint"),
  reqnum: z.number(),
  request_idx: z.number(),
  signature: limited("signature"),
  url: limited("url"),
});

/** `auth_data` fields that hold numbers whose spelling matters. */
const NUMBER_FIELDS = ["cost", "reqnum", "request_idx"] as const;

/** The body of every handler route. */
export const EnvelopeSchema = z.object({
  auth_data: AuthDataSchema,
  payload: z.record(z.string(), z.unknown()),
  session_id: z.string().nullable().optional(),
});

/** A valid envelope. */
export type Envelope = z.output<typeof EnvelopeSchema>;
/** A valid `auth_data`. */
export type AuthData = z.output<typeof AuthDataSchema>;

/** A nested map of field → problem, e.g. `{"auth_data": {"reqnum": "..."}}`. */
export interface FieldErrors {
  [field: string]: string | FieldErrors;
}

/**
 * `reqnum` and `request_idx` exactly as Python reads them: a `bigint` for an
 * integer beyond 2^53 (the `number` in `auth_data` may have lost digits).
 */
export interface AuthNumbers {
  reqnum: ExactNumber;
  request_idx: ExactNumber;
}

/** Result of {@linkcode parseEnvelope}. */
export type EnvelopeResult =
  | { ok: true; envelope: Envelope; numbers: AuthNumbers }
  | { ok: false; errors: FieldErrors };

/** `auth_data` fields Python's `AuthData` requires, in its order. */
const AUTH_FIELDS = Object.keys(AuthDataSchema.shape);

/** Python's words for what is wrong at one path. */
function describe(
  issue: z.core.$ZodIssue,
  input: unknown,
): string | FieldErrors {
  const missing = issue.code === "invalid_type" && input === undefined;
  if (missing) {
    return issue.path.length > 1 ? "missing parameter" : "field missing";
  }
  if (issue.path.length === 1 && issue.path[0] === "payload") {
    // Python's GenericApiPayload: JsonDataException({"data": ...}).
    return { data: "payload must be a dictionary" };
  }
  if (issue.path.length === 1 && issue.path[0] === "auth_data") {
    // Python's AuthData.from_json_msg looks each field up (`param not in
    // json_msg`): a string or a list has none of them.
    return Object.fromEntries(
      AUTH_FIELDS.map((field) => [field, "missing parameter"]),
    );
  }
  return issue.message;
}

/** JSON's name for the type of `value`, for the messages. */
function jsonType(value: unknown): string {
  if (value === null) return "null";
  return Array.isArray(value) ? "array" : typeof value;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const key of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

/**
 * Validates a parsed body; on failure names every bad field. With `text`, the
 * body's JSON text, numbers are also checked against
 * {@linkcode AUTH_DATA_LIMITS} and `numbers` keeps their exact values.
 */
export function parseEnvelope(body: unknown, text?: string): EnvelopeResult {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    // Python looks both keys up in whatever came (500 for a number or null).
    return {
      ok: false,
      errors: {
        auth_data: "field missing",
        payload: "field missing",
        body: "expected a JSON object",
      },
    };
  }
  const result = EnvelopeSchema.safeParse(body);
  if (result.success) return exactNumbers(result.data, text);
  const errors: FieldErrors = {};
  for (const issue of result.error.issues) {
    const path = issue.path.map(String);
    const value = valueAt(body, issue.path);
    const message = describe(issue, value);
    let node = errors;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      if (typeof next === "object") node = next;
      else node = node[key] = {};
    }
    node[path.at(-1) ?? "body"] ??= message;
    if (path.length === 1 && path[0] === "auth_data" && value !== undefined) {
      // Ours, beside Python's map: what auth_data was instead.
      errors.error ??= `auth_data must be an object, not ${jsonType(value)}`;
    }
  }
  return { ok: false, errors };
}

function exactNumbers(
  envelope: Envelope,
  text: string | undefined,
): EnvelopeResult {
  const auth = envelope.auth_data;
  const numbers: AuthNumbers = {
    reqnum: auth.reqnum,
    request_idx: auth.request_idx,
  };
  if (text === undefined) return { ok: true, envelope, numbers };
  const sources = memberTexts(text, ["auth_data"], NUMBER_FIELDS);
  const errors: FieldErrors = {};
  for (const field of NUMBER_FIELDS) {
    const source = sources.get(field);
    // Borrow the text only for the very number JSON.parse read.
    if (source === undefined || !Object.is(Number(source), auth[field])) {
      continue;
    }
    if (source.length > AUTH_DATA_LIMITS.number) {
      errors[field] =
        `number longer than ${AUTH_DATA_LIMITS.number} characters`;
    } else if (field !== "cost") numbers[field] = pythonNumberValue(source);
  }
  if (Object.keys(errors).length > 0) {
    return { ok: false, errors: { auth_data: errors } };
  }
  return { ok: true, envelope, numbers };
}

/**
 * Nesting depth of JSON text, or Infinity past `limit`. Strings are skipped
 * with `indexOf`, so long base64 fields cost little.
 */
export function jsonDepth(text: string, limit = MAX_JSON_DEPTH): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Jump to the closing quote, stepping over escaped quotes.
      let j = text.indexOf('"', i + 1);
      while (j > 0) {
        let backslashes = 0;
        for (let k = j - 1; text.charCodeAt(k) === 0x5c; k--) backslashes++;
        if (backslashes % 2 === 0) break;
        j = text.indexOf('"', j + 1);
      }
      if (j < 0) return depth;
      i = j;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return Infinity;
      }
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}
