/**
 * Small async building blocks shared by the dev stand-in servers: a FIFO
 * slot pool that behaves like an engine scheduler, and random ids. (Sleeps
 * come from lib/std/async.ts.)
 *
 * @module
 */

/**
 * A FIFO pool of `limit` slots: callers beyond the limit wait in arrival
 * order, the way an inference engine keeps requests in its waiting queue.
 */
export class Slots {
  #limit: number;
  #running = 0;
  #waiters: Array<() => void> = [];

  /**
   * Creates the pool.
   *
   * @param limit how many holders may run at once (at least 1).
   */
  constructor(limit: number) {
    this.#limit = Math.max(1, Math.floor(limit));
  }

  /** Number of holders currently running. */
  get running(): number {
    return this.#running;
  }

  /** Number of callers waiting for a slot. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** The slot limit. */
  get limit(): number {
    return this.#limit;
  }

  /**
   * Takes a slot, waiting in FIFO order if all are busy.
   *
   * @returns `true` once a slot is held (call {@linkcode release} later),
   * `false` if `signal` aborted first (nothing to release).
   */
  acquire(signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    if (this.#running < this.#limit && this.#waiters.length === 0) {
      this.#running++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const grant = (): void => {
        signal?.removeEventListener("abort", onAbort);
        this.#running++;
        resolve(true);
      };
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(grant);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve(false);
      };
      this.#waiters.push(grant);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Gives a slot back and wakes the next waiter, if any. */
  release(): void {
    this.#running = Math.max(0, this.#running - 1);
    while (this.#running < this.#limit && this.#waiters.length > 0) {
      this.#waiters.shift()!();
    }
  }
}

/** Lower-case hex of `n` random bytes (for ids such as `cmpl-<hex>`). */
export function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}
