/**
 * Byte helpers with the signatures of `@std/bytes` (JSR is out of reach
 * from the build machines; swap for std later).
 *
 * @module
 */

/**
 * Joins byte arrays into one new array.
 *
 * @example
 * ```ts
 * import { concat } from "./bytes.ts";
 * const joined = concat([new Uint8Array([1, 2]), new Uint8Array([3])]);
 * console.log(joined); // Uint8Array(3) [ 1, 2, 3 ]
 * ```
 */
export function concat(buffers: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const b of buffers) length += b.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const b of buffers) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}
