/**
 * What an error says, for logs and answers.
 *
 * @module
 */

/**
 * The message of `e` when it is an `Error`, else `e` as text.
 *
 * @example
 * ```ts
 * import { errorText } from "./errors.ts";
 * errorText(new Error("refused")); // "refused"
 * ```
 */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
