/**
 * Helpers for the tests of the dev stand-ins (`lib/dev/`): JSON POSTs,
 * polling, SSE reading, temporary log files and key pairs.
 */
import { RSA_ALGORITHM } from "../../dev/_signing.ts";

/** POSTs `body` as JSON; a string is sent as is (for malformed bodies). */
export function post(
  url: string,
  body: unknown,
  signal?: AbortSignal,
): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal,
  });
}

/** Polls `pred` every 10 ms until it holds; throws after `ms`. */
export async function waitFor(
  pred: () => boolean | Promise<boolean>,
  ms = 1000,
): Promise<void> {
  const end = performance.now() + ms;
  while (!(await pred())) {
    if (performance.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Waits until the file at `path` contains `text`. */
export function waitForLog(path: string, text: string): Promise<void> {
  return waitFor(async () => (await Deno.readTextFile(path)).includes(text));
}

/** Waits until nothing listens at `url` any more (connection refused). */
export function waitUntilRefused(url: string): Promise<void> {
  return waitFor(async () => {
    try {
      await (await fetch(`${url}/health`)).body?.cancel();
      return false;
    } catch {
      return true;
    }
  });
}

/** An empty temporary file for a stand-in's log; `await using` removes it. */
export interface TempLog extends AsyncDisposable {
  readonly path: string;
}

/** Creates a {@linkcode TempLog}. */
export async function tempLog(): Promise<TempLog> {
  const path = await Deno.makeTempFile();
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path) };
}

/** One server-sent event. */
export interface SseEvent {
  /** The event as sent, e.g. `data:{...}`. */
  raw: string;
  /** The payload after `data:` (and one optional space). */
  data: string;
  /** `performance.now()` when it arrived. */
  at: number;
}

/**
 * Reads the events of an SSE body until it ends or `stopAfter` arrived,
 * then aborts `abort` (if given) and cancels the body.
 */
export async function readEvents(
  res: Response,
  stopAfter = Infinity,
  abort?: AbortController,
): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    while (events.length < stopAfter) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const raw = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = raw.replace(/^data: ?/, "");
        events.push({ raw, data, at: performance.now() });
      }
    }
  } finally {
    if (abort) abort.abort();
    await reader.cancel().catch(() => {});
  }
  return events;
}

/**
 * A fresh RSA-2048 key pair of the kind the autoscaler signs with
 * (RSASSA-PKCS1-v1_5, SHA-256): the control plane's `keyPair`, or any test
 * signer. Generating one is slow: share it across a file's tests.
 */
export function controlPlaneKeys(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(RSA_ALGORITHM, true, [
    "sign",
    "verify",
  ]) as Promise<CryptoKeyPair>;
}
