/**
 * The error type thrown by the edgeworker client.
 *
 * @module
 */

/**
 * What went wrong:
 * - `timeout`: the overall deadline passed (no ready worker, or no answer);
 * - `network`: the autoscaler or the worker could not be reached;
 * - `route`: the autoscaler's `/route/` refused the request;
 * - `http`: the worker answered with a non-2xx status (JSON helpers only);
 * - `invalid_response`: a 2xx answer that is not the expected JSON;
 * - `session_closed`: the session has ended or expired.
 */
export type EdgeworkerErrorCode =
  | "timeout"
  | "network"
  | "route"
  | "http"
  | "invalid_response"
  | "session_closed";

/** Fields of an {@linkcode EdgeworkerError} besides its message. */
export interface EdgeworkerErrorInit {
  /** See {@linkcode EdgeworkerErrorCode}. */
  code: EdgeworkerErrorCode;
  /** HTTP status of the failing answer; 0 when there was none. */
  status?: number;
  /** Body text of the failing answer; empty when there was none. */
  body?: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * Thrown by {@linkcode EdgeworkerClient} and {@linkcode Session} when a call
 * cannot produce a worker response.
 *
 * @example
 * ```ts
 * import { EdgeworkerClient } from "./client.ts";
 * import { EdgeworkerError } from "./errors.ts";
 * const client = new EdgeworkerClient({ endpoint: "my-endpoint", apiKey: "..." });
 * try {
 *   await client.requestJson("/v1/completions", { prompt: "Hi" }, { cost: 16 });
 * } catch (err) {
 *   if (err instanceof EdgeworkerError && err.code === "timeout") {
 *     // no worker became ready in time
 *   }
 * }
 * ```
 */
export class EdgeworkerError extends Error {
  /** See {@linkcode EdgeworkerErrorCode}. */
  readonly code: EdgeworkerErrorCode;
  /** HTTP status of the failing answer; 0 when there was none. */
  readonly status: number;
  /** Body text of the failing answer; empty when there was none. */
  readonly body: string;

  /**
   * Creates the error.
   *
   * @param message A human-readable explanation.
   * @param init The code, status, body and cause.
   */
  constructor(message: string, init: EdgeworkerErrorInit) {
    super(message, init.cause === undefined ? {} : { cause: init.cause });
    this.name = "EdgeworkerError";
    this.code = init.code;
    this.status = init.status ?? 0;
    this.body = init.body ?? "";
  }
}

/** Shortens a body for inclusion in an error message. */
export function snippet(text: string, max = 300): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** The message of an unknown thrown value. */
export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
