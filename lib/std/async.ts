/**
 * The async helpers of the worker and the stand-ins: {@linkcode delay},
 * {@linkcode deadline} and {@linkcode retry}, with the names, signatures and
 * errors of Deno's `@std/async` (JSR is out of reach here), so this module
 * can be replaced by an import of it. One addition, marked where it is:
 * {@linkcode RetryOptions.signal}.
 *
 * Every sleep, time limit on a promise and backoff loop of lib/ and dev/ goes
 * through these (what takes a signal, `fetch` or a subprocess, takes
 * `AbortSignal.timeout` itself). None leaves a timer behind once settled.
 *
 * @module
 */

/** Options of {@linkcode delay}. */
export interface DelayOptions {
  /** Ends the wait early: the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/**
 * Resolves after `ms` milliseconds; rejects with `signal.reason` at once if
 * the signal is (or becomes) aborted, clearing the timer.
 *
 * @example
 * ```ts
 * import { delay } from "./async.ts";
 * await delay(10);
 * ```
 */
export function delay(ms: number, options: DelayOptions = {}): Promise<void> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const abort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", abort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", abort, { once: true });
  });
}

/** Options of {@linkcode deadline}. */
export interface DeadlineOptions {
  /** Gives up early: the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/**
 * Settles as `promise` does, unless `ms` milliseconds pass first (rejects
 * with a `DOMException` named `TimeoutError`) or `signal` aborts (rejects
 * with its reason). `promise` itself is not cancelled.
 *
 * @example
 * ```ts
 * import { deadline } from "./async.ts";
 * const answer = await deadline(Promise.resolve(42), 1000);
 * ```
 */
export function deadline<T>(
  promise: Promise<T>,
  ms: number,
  options: DeadlineOptions = {},
): Promise<T> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  // A plain timer, cleared on settling: `AbortSignal.timeout` would keep its
  // timer, signal and closure alive for the whole `ms` after the promise
  // settled (5 minutes per request for the body timeout).
  return new Promise<T>((resolve, reject) => {
    const settle = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
    };
    const abort = (): void => {
      settle();
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      settle();
      reject(new DOMException("Signal timed out.", "TimeoutError"));
    }, ms);
    signal?.addEventListener("abort", abort, { once: true });
    promise.then((value) => {
      settle();
      resolve(value);
    }, (e) => {
      settle();
      reject(e);
    });
  });
}

/**
 * Settles as `promise` does, unless `signal` aborts first (rejects with its
 * reason), as std's `abortable`. `promise` itself is not cancelled: what it
 * yields after an abort is the caller's to clean up.
 *
 * @example
 * ```ts
 * import { abortable } from "./async.ts";
 * const value = await abortable(Promise.resolve(1), new AbortController().signal);
 * ```
 */
export function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal,
): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const abort = (): void => reject(signal.reason);
    signal.addEventListener("abort", abort, { once: true });
    promise.then((value) => {
      signal.removeEventListener("abort", abort);
      resolve(value);
    }, (e) => {
      signal.removeEventListener("abort", abort);
      reject(e);
    });
  });
}

/** Thrown by {@linkcode retry} once `maxAttempts` attempts have failed. */
export class RetryError extends Error {
  /**
   * @param cause What the last attempt threw.
   * @param attempts How many attempts were made.
   */
  constructor(cause: unknown, attempts: number) {
    super(`Gave up after ${attempts} failed attempts`);
    this.name = "RetryError";
    this.cause = cause;
  }
}

/** Options of {@linkcode retry}. */
export interface RetryOptions {
  /**
   * How much the wait grows after each failed attempt.
   *
   * @default {2}
   */
  multiplier?: number;
  /**
   * The longest wait between attempts, in ms.
   *
   * @default {60000}
   */
  maxTimeout?: number;
  /**
   * Attempts before giving up.
   *
   * @default {5}
   */
  maxAttempts?: number;
  /**
   * The wait after the first failed attempt, in ms.
   *
   * @default {1000}
   */
  minTimeout?: number;
  /**
   * Share of each wait that is random: 1 waits anywhere from 0 to the full
   * backoff, 0 waits the full backoff.
   *
   * @default {1}
   */
  jitter?: number;
  /**
   * Whether an error is worth another attempt; others are thrown as they are.
   *
   * @default {() => true}
   */
  isRetriable?: (error: unknown) => boolean;
  /**
   * Not in `@std/async`: stops retrying. An abort ends the wait between
   * attempts and `retry` rejects with `signal.reason`; no attempt starts
   * after it (one under way is the caller's to stop).
   */
  signal?: AbortSignal;
}

/**
 * Calls `fn` until it returns, at most `maxAttempts` times, waiting
 * `min(maxTimeout, minTimeout * multiplier ** n)` (less its jitter) after
 * the n-th failure (n from 0).
 *
 * @throws {RetryError} with the last error as `cause` when every attempt failed.
 * @throws {RangeError} for options out of range, before any attempt.
 *
 * @example
 * ```ts
 * import { retry } from "./async.ts";
 * let n = 0;
 * await retry(() => {
 *   if (++n < 3) throw new Error("not yet");
 * }, { minTimeout: 1, jitter: 0 });
 * ```
 */
export async function retry<T>(
  fn: (() => Promise<T>) | (() => T),
  options: RetryOptions = {},
): Promise<T> {
  const {
    multiplier = 2,
    maxTimeout = 60_000,
    maxAttempts = 5,
    minTimeout = 1000,
    jitter = 1,
    isRetriable = () => true,
    signal,
  } = options;
  const expect = (ok: boolean, rule: string, value: number): void => {
    if (!ok) throw new RangeError(`retry: expected ${rule}, got ${value}`);
  };
  expect(
    Number.isInteger(maxAttempts) && maxAttempts >= 1,
    "maxAttempts >= 1, an integer",
    maxAttempts,
  );
  expect(
    multiplier >= 1 && multiplier < Infinity,
    "multiplier >= 1",
    multiplier,
  );
  expect(maxTimeout > 0, "maxTimeout > 0", maxTimeout);
  expect(
    minTimeout >= 0 && minTimeout <= maxTimeout,
    "0 <= minTimeout <= maxTimeout",
    minTimeout,
  );
  expect(jitter >= 0 && jitter <= 1, "0 <= jitter <= 1", jitter);
  for (let attempt = 0;; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn();
    } catch (error) {
      if (!isRetriable(error)) throw error;
      if (attempt + 1 >= maxAttempts) throw new RetryError(error, maxAttempts);
      const backoff = Math.min(maxTimeout, minTimeout * multiplier ** attempt);
      await delay((1 - jitter * Math.random()) * backoff, { signal });
    }
  }
}
