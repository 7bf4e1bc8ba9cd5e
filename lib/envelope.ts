/**
 * The request envelope `{auth_data, payload, session_id?}`: parsing and the
 * 422 error map that names each bad field, as the Python worker answers.
 *
 * @module
 */
import { z } from "zod";
import type { Payload } from "./config.ts";

/** Deepest JSON nesting accepted; deeper bodies are abuse, not inference. */
export const MAX_JSON_DEPTH = 512;

/** `auth_data` as `/route/` returns it; extra keys are kept. */
export const AuthDataSchema = z.looseObject({
  cost: z.union([z.number(), z.string()]),
  endpoint: z.string(),
  reqnum: z.int(),
  request_idx: z.int(),
  signature: z.string(),
  url: z.string(),
});

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

/** Result of {@linkcode parseEnvelope}. */
export type EnvelopeResult =
  | { ok: true; envelope: Envelope }
  | { ok: false; errors: FieldErrors };

function describe(issue: z.core.$ZodIssue, input: unknown): string {
  const missing = issue.code === "invalid_type" && input === undefined;
  if (missing) {
    return issue.path.length > 1 ? "missing parameter" : "field missing";
  }
  if (issue.path[0] === "payload" && issue.path.length === 1) {
    return "payload must be a dictionary";
  }
  return issue.message;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const key of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

/** Validates a parsed body; on failure names every bad field. */
export function parseEnvelope(body: unknown): EnvelopeResult {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return { ok: false, errors: { body: "expected a JSON object" } };
  }
  const result = EnvelopeSchema.safeParse(body);
  if (result.success) return { ok: true, envelope: result.data };
  const errors: FieldErrors = {};
  for (const issue of result.error.issues) {
    const path = issue.path.map(String);
    const message = describe(issue, valueAt(body, issue.path));
    let node = errors;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      if (typeof next === "object") node = next;
      else node = node[key] = {};
    }
    node[path.at(-1) ?? "body"] ??= message;
  }
  return { ok: false, errors };
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

/** The payload forwarded to the model server. */
export type { Payload };
