/**
 * Incremental line splitting with a bounded line length.
 *
 * @module
 */

/** Options for {@linkcode LineSplitter}. */
export interface LineSplitterOptions {
  /**
   * Longest line kept, in UTF-16 code units. A longer line is emitted cut to
   * this length as soon as it exceeds it, and the rest of it (up to its
   * newline) is discarded, so a line without end cannot grow memory.
   *
   * @default {65536}
   */
  maxLineLength?: number;
}

/** Default for {@linkcode LineSplitterOptions.maxLineLength}: 64 KiB. */
export const DEFAULT_MAX_LINE_LENGTH = 64 * 1024;

/**
 * Splits text pushed in arbitrary pieces into complete lines, ended by `\n`
 * or `\r\n` (the line terminator is not part of the line). A partial line is
 * kept until its newline arrives.
 *
 * @example Usage
 * ```ts
 * import { LineSplitter } from "./line_splitter.ts";
 *
 * const splitter = new LineSplitter();
 * splitter.push("model loa"); // []
 * splitter.push("ded\r\nnext"); // ["model loaded"]
 * ```
 */
export class LineSplitter {
  #max: number;
  #partial = "";
  // True while skipping the tail of a line that was already emitted cut.
  #discarding = false;

  /**
   * Constructs a new splitter.
   *
   * @param options Limits; see {@linkcode LineSplitterOptions}.
   * @throws {RangeError} If `maxLineLength` is not a positive integer.
   */
  constructor(options: LineSplitterOptions = {}) {
    const max = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(
        `Cannot use maxLineLength ${max}: expected a positive integer`,
      );
    }
    this.#max = max;
  }

  /** Length of the partial line held back, in UTF-16 code units. */
  get pendingLength(): number {
    return this.#partial.length;
  }

  /**
   * Adds text and returns the lines it completes, in order.
   *
   * @param text The next piece of text; may start or end mid-line.
   * @returns The completed lines, without their terminators.
   */
  push(text: string): string[] {
    const lines: string[] = [];
    let start = 0;
    while (start < text.length) {
      const lf = text.indexOf("\n", start);
      if (this.#discarding) {
        if (lf === -1) break;
        this.#discarding = false;
        start = lf + 1;
        continue;
      }
      let line = this.#partial + text.slice(start, lf === -1 ? undefined : lf);
      this.#partial = "";
      if (lf === -1) {
        if (line.length > this.#max) {
          lines.push(this.#cut(line));
          this.#discarding = true;
        } else {
          this.#partial = line;
        }
        break;
      }
      if (line.endsWith("\r")) line = line.slice(0, -1);
      lines.push(line.length > this.#max ? this.#cut(line) : line);
      start = lf + 1;
    }
    return lines;
  }

  /**
   * Returns the partial line held back (if any) as a final line, with a
   * trailing `\r` removed, and clears it. Use at a definite end of input.
   *
   * @returns The last unterminated line, or `undefined` if there is none.
   */
  flush(): string | undefined {
    const line = this.#partial;
    this.reset();
    if (line === "") return undefined;
    return line.endsWith("\r") ? line.slice(0, -1) : line;
  }

  /** Drops the partial line (and any over-long line being skipped). */
  reset(): void {
    this.#partial = "";
    this.#discarding = false;
  }

  #cut(line: string): string {
    let end = this.#max;
    // Do not leave half of a surrogate pair at the cut.
    const code = line.charCodeAt(end - 1);
    if (code >= 0xd800 && code <= 0xdbff && end > 1) end--;
    return line.slice(0, end);
  }
}
