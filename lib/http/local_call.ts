/**
 * The peer of `callModel` for a handler with a `remoteFunction`: the
 * function runs in the worker and its answer comes back as a
 * {@linkcode ModelCall}, so the ticket, the relay and the ledger treat it
 * exactly as a model server's answer. A throw is a 500; the request's
 * signal (client gone, timeout, shutdown) stops the wait at once and
 * errors a body still being read, so a function that ignores its signal
 * cannot hold a slot past a limit.
 *
 * @module
 */
import type { Payload, RemoteFunction } from "../config/schemas.ts";
import { runRemoteFunction } from "../model/remote_function.ts";
import { answerOf, type ModelCall } from "./proxy.ts";

/** What {@linkcode callLocal} gives: a model call's outcomes, a throw as 500. */
export type LocalCall =
  | ModelCall
  | { ok: false; aborted: false; status: 500; detail: string };

/** Options of {@linkcode callLocal}. */
export interface CallLocalOptions {
  /** The handler's route (told to the function). */
  route: string;
  /** The client's request (told to the function). */
  request?: Request;
  /** The request's signal: client gone, timeout or shutdown. */
  signal: AbortSignal;
}

/** Runs `fn` for `payload` as a model call. */
export async function callLocal(
  fn: RemoteFunction,
  payload: Payload,
  options: CallLocalOptions,
): Promise<LocalCall> {
  const { signal } = options;
  if (signal.aborted) return { ok: false, aborted: true };
  const stopped = Promise.withResolvers<"aborted">();
  const onAbort = () => stopped.resolve("aborted");
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const answer = await Promise.race([
      runRemoteFunction(fn, payload, {
        signal,
        route: options.route,
        ...(options.request ? { request: options.request } : {}),
      }),
      stopped.promise,
    ]);
    if (answer === "aborted") return { ok: false, aborted: true };
    return { ok: true, response: answerOf(abortable(answer, signal)) };
  } catch (e) {
    if (signal.aborted) return { ok: false, aborted: true };
    return {
      ok: false,
      aborted: false,
      status: 500,
      detail: `remote function failed: ${
        e instanceof Error ? e.message : String(e)
      }`,
    };
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** `response` whose body errors once `signal` aborts (a fetch body does so itself). */
function abortable(response: Response, signal: AbortSignal): Response {
  if (response.body === null) return response;
  const reader = response.body.getReader();
  const aborted = new Promise<never>((_, reject) => {
    const fail = () => reject(signal.reason);
    if (signal.aborted) fail();
    else signal.addEventListener("abort", fail, { once: true });
  });
  aborted.catch(() => {});
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await Promise.race([reader.read(), aborted]);
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (e) {
        await reader.cancel(e).catch(() => {});
        controller.error(e);
      }
    },
    cancel(reason) {
      return reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}
