/**
 * Small async building blocks shared by the dev stand-in servers: an
 * abortable sleep, random ids, and waiting for Ctrl-C. (Their FIFO slots are
 * `lib/traffic/admission.ts`'s `SlotQueue`.)
 *
 * @module
 */
import { delay } from "../lib/std/async.ts";

/**
 * Waits `ms` milliseconds unless `signal` aborts first. Never rejects and
 * never leaves a timer behind.
 *
 * @returns `true` when the time elapsed, `false` when the signal aborted.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return delay(Math.max(0, ms), { signal }).then(() => true, () => false);
}

/** Lower-case hex of `n` random bytes (for ids such as `cmpl-<hex>`). */
export function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Resolves on SIGINT or SIGTERM. */
export async function untilSignal(): Promise<void> {
  const { promise: stopped, resolve } = Promise.withResolvers<void>();
  const stop = () => resolve();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await stopped;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
}
