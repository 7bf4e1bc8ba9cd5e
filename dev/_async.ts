/**
 * Small async building blocks shared by the dev stand-in servers: an
 * abortable sleep and random ids. (Their FIFO slots are
 * `lib/traffic/admission.ts`'s `SlotQueue`.)
 *
 * @module
 */

/**
 * Waits `ms` milliseconds unless `signal` aborts first. Never rejects and
 * never leaves a timer behind.
 *
 * @returns `true` when the time elapsed, `false` when the signal aborted.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Lower-case hex of `n` random bytes (for ids such as `cmpl-<hex>`). */
export function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}
