/**
 * The HTTP and polling helpers every test shares: one JSON `post`, one
 * `waitFor`, one SSE reader and one read-to-the-end.
 *
 * @module
 */
import { LineSplitter } from "../../lib/model/line_splitter.ts";

/**
 * POSTs `body` to `base + path` as JSON; a string is sent as is (envelopes
 * written by hand, malformed bodies). `init` overrides any field, headers
 * included.
 */
export function post(
  base: string,
  path: string,
  body: unknown,
  init: RequestInit = {},
): Promise<Response> {
  return fetch(base + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });
}

/** Waits until `cond()` holds, polling every 10 ms; throws after `timeoutMs`. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 3000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** One server-sent event. */
export interface SseEvent {
  /** The event's lines as sent, e.g. `data:{...}`. */
  raw: string;
  /** The payload after `data:` (and one optional space). */
  data: string;
  /** `performance.now()` when it arrived. */
  at: number;
}

/** Splits SSE text pushed in pieces into events (a blank line ends one). */
class EventSplitter {
  #lines = new LineSplitter();
  #event: string[] = [];

  /** Adds text; returns the events it completes as `[raw, data]`. */
  push(text: string): [string, string][] {
    const done: [string, string][] = [];
    for (const line of this.#lines.push(text)) {
      if (line !== "") this.#event.push(line);
      else if (this.#event.length > 0) {
        const raw = this.#event.join("\n");
        this.#event = [];
        done.push([raw, raw.replace(/^data: ?/, "")]);
      }
    }
    return done;
  }
}

/**
 * Reads the events of an SSE body until it ends or `stopAfter` arrived,
 * then aborts `abort` (if given) and cancels the body. Lines may end in
 * `\n` or `\r\n`.
 */
export async function readEvents(
  res: Response,
  stopAfter = Infinity,
  abort?: AbortController,
): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  const splitter = new EventSplitter();
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  try {
    while (events.length < stopAfter) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const [raw, data] of splitter.push(value)) {
        events.push({ raw, data, at: performance.now() });
      }
    }
  } finally {
    if (abort) abort.abort();
    await reader.cancel().catch(() => {});
  }
  return events;
}

/** The JSON payloads of the `data:` events of SSE text (`[DONE]` left out). */
export function sseEvents(text: string): Record<string, unknown>[] {
  return new EventSplitter().push(text + "\n\n")
    .filter(([raw, data]) =>
      raw.startsWith("data:") && data.trim() !== "[DONE]"
    )
    .map(([, data]) => JSON.parse(data));
}

/** Reads a body to its end; `error` is set if it broke off. */
export async function readAll(
  res: Response,
): Promise<{ text: string; error?: unknown }> {
  const decoder = new TextDecoder();
  let text = "";
  try {
    for await (const chunk of res.body!) {
      text += decoder.decode(chunk, { stream: true });
    }
    return { text };
  } catch (error) {
    return { text, error };
  }
}
