/**
 * `id:` fields for a Server-Sent Events stream, put in at event boundaries
 * as the chunks pass: each chunk comes out as one chunk (never merged with
 * the next, never held back), with an `id: <offset>\n` line inserted before
 * each blank line that ends an event. The id is the byte position of that
 * `id:` line in the stream as delivered, so a `Last-Event-ID` names a place
 * in the stream (the worker resumes after that event's blank line).
 *
 * Lines end in CR LF, LF or CR (WHATWG HTML, "Parsing an event stream");
 * the scanner keeps its state across chunks, so a terminator split between
 * two chunks is read as one.
 *
 * @module
 */

import { concat } from "../std/bytes.ts";

const LF = 0x0a;
const CR = 0x0d;
const encoder = new TextEncoder();

/**
 * Inserts `id:` lines into one SSE stream, chunk by chunk.
 *
 * @example
 * ```ts
 * import { SseIdInjector } from "./sse_ids.ts";
 * const ids = new SseIdInjector();
 * const out = ids.inject(new TextEncoder().encode("data: a\n\n"), 0);
 * // new TextDecoder().decode(out) === "data: a\nid: 8\n\n"
 * ```
 */
export class SseIdInjector {
  // The last byte ended a line (true at the start of the stream).
  #atLineStart = true;
  // The last byte was CR: an LF right after it belongs to the same terminator.
  #afterCr = false;
  // The current event has a line (field or comment): its blank line gets an id.
  #inEvent = false;

  /**
   * `chunk` with an `id:` line before each blank line that ends an event;
   * the chunk itself when it ends none. `offset` is the number of bytes
   * delivered before this chunk.
   */
  inject(chunk: Uint8Array, offset: number): Uint8Array {
    let cuts: number[] | undefined;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (this.#afterCr) {
        this.#afterCr = false;
        if (b === LF) continue;
      }
      if (b === CR || b === LF) {
        if (this.#atLineStart) {
          if (this.#inEvent) (cuts ??= []).push(i);
          this.#inEvent = false;
        }
        this.#atLineStart = true;
        this.#afterCr = b === CR;
      } else if (this.#atLineStart) {
        this.#atLineStart = false;
        this.#inEvent = true;
      }
    }
    if (!cuts) return chunk;
    const parts: Uint8Array[] = [];
    let from = 0;
    let at = offset;
    for (const cut of cuts) {
      const before = chunk.subarray(from, cut);
      at += before.length;
      const line = idLine(at);
      parts.push(before, line);
      at += line.length;
      from = cut;
    }
    parts.push(chunk.subarray(from));
    return concat(parts);
  }

  /**
   * The bytes that end the event under way, so that what follows starts a
   * new event: `""` at an event boundary, else a line end and a blank line.
   */
  closing(): string {
    if (!this.#inEvent) return "";
    return this.#atLineStart ? "\n" : "\n\n";
  }
}

/** The `id:` line put at `offset`. */
export function idLine(offset: number): Uint8Array {
  return encoder.encode(`id: ${offset}\n`);
}
