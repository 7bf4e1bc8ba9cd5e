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

/**
 * Each byte as the code point of the same value (the Fetch standard's
 * "isomorphic decode"): how HTTP header bytes become a `ByteString`. Unlike
 * `new TextDecoder("latin1")` (which is windows-1252, and an op call) every
 * byte round-trips, 0x80–0x9F included.
 *
 * @example
 * ```ts
 * import { isomorphicDecode } from "./bytes.ts";
 * console.log(isomorphicDecode(new Uint8Array([0x61, 0x80]))); // "a\x80"
 * ```
 */
export function isomorphicDecode(bytes: Uint8Array): string {
  // ASCII, the usual head, is what UTF-8 decodes to the same length with no
  // replacement character; Deno's UTF-8 decoder is the fast one (~3×).
  const ascii = utf8.decode(bytes);
  if (ascii.length === bytes.length && !ascii.includes("\uFFFD")) return ascii;
  // fromCharCode takes its bytes as arguments: a slice at a time.
  const STEP = 8192;
  let out = "";
  for (let at = 0; at < bytes.length; at += STEP) {
    out += String.fromCharCode.apply(
      null,
      bytes.subarray(at, at + STEP) as unknown as number[],
    );
  }
  return out;
}

const utf8 = new TextDecoder();
