/**
 * Parsing of streamed model responses: Server-Sent Events (`data: {...}`)
 * and JSON Lines, as produced by vLLM, TGI, SGLang, llama.cpp and friends.
 *
 * Every `data:` payload (or bare JSON line) is parsed as JSON and emitted as
 * one event. `[DONE]` markers, comments (`: keep-alive`), the other SSE
 * fields (`event:`, `id:`, `retry:`), blank lines and anything that is not
 * JSON are skipped. Lines may end in `\n`, `\r\n` or `\r`, and events may be
 * split anywhere across chunks (including inside a UTF-8 sequence or between
 * `\r` and `\n`).
 *
 * @module
 */

const LF = 10;
const CR = 13;
const OTHER_SSE_FIELD = /^(event|id|retry)(:|$)/;

type Parsed = { ok: true; value: unknown } | { ok: false };

function tryParse(text: string): Parsed {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

function isDone(text: string): boolean {
  return text.trim() === "[DONE]";
}

/**
 * Incremental, push-based parser for SSE and JSON Lines text.
 *
 * A `data:` event is emitted as soon as the data collected so far parses as
 * JSON (so single-line events do not wait for the blank line that ends them),
 * and otherwise when the blank line arrives (multi-line `data:` events).
 *
 * @example
 * ```ts
 * const parser = new EventStreamParser();
 * parser.push('data: {"a":1}\n\ndata: {"b"'); // → [{ a: 1 }]
 * parser.push(":2}\n\ndata: [DONE]\n\n"); // → [{ b: 2 }]
 * parser.end(); // → []
 * ```
 */
export class EventStreamParser {
  #buffer = "";
  #skipLF = false;
  #data: string[] = [];

  /**
   * Feeds decoded text and returns the events it completed.
   *
   * @param text The next piece of the stream, already decoded from UTF-8.
   * @returns The events completed by this piece, in order.
   */
  push(text: string): unknown[] {
    const out: unknown[] = [];
    if (text === "") return out;
    // The previous piece ended in "\r": a "\n" here belongs to that break.
    if (this.#skipLF && text.charCodeAt(0) === LF) text = text.slice(1);
    this.#skipLF = false;
    const scanFrom = this.#buffer.length; // the remainder holds no breaks
    const buf = this.#buffer + text;
    let start = 0;
    for (let i = scanFrom; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (c !== LF && c !== CR) continue;
      const line = buf.slice(start, i);
      if (c === CR) {
        if (i + 1 === buf.length) this.#skipLF = true;
        else if (buf.charCodeAt(i + 1) === LF) i++;
      }
      start = i + 1;
      this.#line(line, out);
    }
    this.#buffer = buf.slice(start);
    return out;
  }

  /**
   * Signals the end of the stream and returns any event still buffered
   * (a last line without a newline, or `data:` lines without a blank line).
   *
   * @returns The remaining events.
   */
  end(): unknown[] {
    const out: unknown[] = [];
    const rest = this.#buffer;
    this.#buffer = "";
    this.#skipLF = false;
    if (rest !== "") this.#line(rest, out);
    this.#flush(out);
    return out;
  }

  #line(line: string, out: unknown[]): void {
    if (line === "") {
      this.#flush(out);
      return;
    }
    if (line.startsWith(":")) return; // comment / keep-alive
    if (line.startsWith("data:")) {
      const value = line.startsWith("data: ") ? line.slice(6) : line.slice(5);
      this.#data.push(value);
      const joined = this.#data.join("\n");
      if (isDone(joined)) {
        this.#data = [];
        return;
      }
      const parsed = tryParse(joined);
      if (parsed.ok) {
        out.push(parsed.value);
        this.#data = [];
      }
      return;
    }
    if (OTHER_SSE_FIELD.test(line)) return;
    // JSON Lines: a bare line of JSON.
    const trimmed = line.trim();
    if (trimmed === "" || isDone(trimmed)) return;
    const parsed = tryParse(trimmed);
    if (parsed.ok) out.push(parsed.value);
  }

  #flush(out: unknown[]): void {
    if (this.#data.length === 0) return;
    const joined = this.#data.join("\n");
    this.#data = [];
    if (isDone(joined)) return;
    const parsed = tryParse(joined);
    if (parsed.ok) out.push(parsed.value);
  }
}

/**
 * Reads an SSE or JSON Lines body and yields each event as parsed JSON,
 * as soon as it arrives.
 *
 * Breaking out of the loop early cancels the body, which closes the
 * connection (and, with an edgeworker worker, the model request).
 *
 * @param body The response body to read; it must not be locked.
 * @returns An async generator of parsed events.
 *
 * @example
 * ```ts
 * import { parseEventStream } from "./sse.ts";
 * const res = await fetch("http://127.0.0.1:8000/v1/completions", {
 *   method: "POST",
 *   body: JSON.stringify({ prompt: "Hi", stream: true }),
 * });
 * for await (const event of parseEventStream(res.body!)) {
 *   // event is e.g. { choices: [{ text: "..." }] }
 * }
 * ```
 */
export async function* parseEventStream(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<unknown, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new EventStreamParser();
  let finished = false;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) {
        finished = true;
        break;
      }
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    yield* parser.push(decoder.decode());
    yield* parser.end();
  } finally {
    if (!finished) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/**
 * Creates a `TransformStream` from raw body bytes to parsed events, for use
 * with `body.pipeThrough(...)`.
 *
 * @returns A transform whose readable side carries one parsed JSON value per
 * event.
 *
 * @example
 * ```ts
 * import { eventStreamTransform } from "./sse.ts";
 * const res = await fetch("http://127.0.0.1:8000/v1/completions", {
 *   method: "POST",
 *   body: JSON.stringify({ prompt: "Hi", stream: true }),
 * });
 * const events = res.body!.pipeThrough(eventStreamTransform());
 * for await (const event of events) {
 *   // ...
 * }
 * ```
 */
export function eventStreamTransform(): TransformStream<Uint8Array, unknown> {
  const decoder = new TextDecoder();
  const parser = new EventStreamParser();
  return new TransformStream<Uint8Array, unknown>({
    transform(chunk, controller): void {
      const text = decoder.decode(chunk, { stream: true });
      for (const event of parser.push(text)) controller.enqueue(event);
    },
    flush(controller): void {
      for (const event of parser.push(decoder.decode())) {
        controller.enqueue(event);
      }
      for (const event of parser.end()) controller.enqueue(event);
    },
  });
}
