/**
 * A fake token engine shared by the LLM stand-ins: a scheduler with a fixed
 * number of running slots (the rest wait, FIFO) and per-request decoding at a
 * settable tokens-per-second rate.
 *
 * @module
 */

import { type Release, SlotQueue } from "../lib/traffic/admission.ts";
import { delay } from "../lib/std/async.ts";

/** One generated token. */
export interface Token {
  /** Position in the completion, from 0. */
  index: number;
  /** Vocabulary id. */
  id: number;
  /** Text, with its leading space. */
  text: string;
  /** A plausible log-probability. */
  logprob: number;
}

const VOCAB = [
  " the",
  " quick",
  " model",
  " answers",
  " every",
  " request",
  " with",
  " tokens",
  " that",
  " arrive",
  " at",
  " a",
  " steady",
  " pace",
  " from",
  " GPU",
];

/** Options of {@linkcode TokenEngine}. */
export interface TokenEngineOptions {
  /** Decoding speed of each request, in tokens per second. @default 50 */
  tokensPerSecond?: number;
  /** Requests decoded at once; later ones wait in FIFO order. @default 256 */
  maxConcurrency?: number;
}

/** Scheduler + decoder. Counters are public for the `/metrics` pages. */
export class TokenEngine {
  #slots: SlotQueue;
  #intervalMs = 20;
  // Set while generation hangs: resolved when it resumes.
  #hung: PromiseWithResolvers<void> | undefined;
  /** Prompt tokens of all admitted requests. */
  promptTokens = 0;
  /** Tokens generated so far. */
  generationTokens = 0;
  /** Requests that finished generating. */
  finished = 0;

  /**
   * Creates an idle engine.
   *
   * @param options speed and concurrency.
   */
  constructor(options: TokenEngineOptions = {}) {
    const limit = Math.floor(options.maxConcurrency ?? 256);
    this.#slots = new SlotQueue(Math.max(1, limit));
    this.setTokensPerSecond(options.tokensPerSecond ?? 50);
  }

  /** Requests being decoded. */
  get running(): number {
    return this.#slots.active;
  }

  /** Requests waiting for a slot. */
  get waiting(): number {
    return this.#slots.waiting;
  }

  /** Slot limit. */
  get maxConcurrency(): number {
    return this.#slots.capacity;
  }

  /** Changes the speed; running requests pick it up at their next token. */
  setTokensPerSecond(tokensPerSecond: number): void {
    if (!(tokensPerSecond > 0)) {
      throw new RangeError(
        `tokensPerSecond must be > 0, got ${tokensPerSecond}`,
      );
    }
    this.#intervalMs = 1000 / tokensPerSecond;
  }

  /**
   * Makes generation hang (no token comes, the HTTP server and `/health`
   * keep answering, as a wedged engine loop does) or resume.
   */
  setHung(hung: boolean): void {
    if (hung) this.#hung ??= Promise.withResolvers();
    else {
      this.#hung?.resolve();
      this.#hung = undefined;
    }
  }

  /**
   * Waits for a running slot (FIFO); resolves with the function that frees
   * it, or `undefined` if `signal` aborted first.
   */
  admit(signal: AbortSignal): Promise<Release | undefined> {
    return this.#slots.acquire(signal).catch(() => undefined);
  }

  /**
   * Yields `count` tokens, one per interval (the first one after one
   * interval: prefill). Stops early, without throwing, when `signal` aborts.
   */
  async *decode(count: number, signal: AbortSignal): AsyncGenerator<Token> {
    let due = performance.now();
    for (let index = 0; index < count; index++) {
      due += this.#intervalMs;
      // Tokens already due go out without a timer: chained timers have a
      // minimum delay that would cap the speed near 500 tokens/s.
      const wait = due - performance.now();
      if (wait > 1) await delay(wait, { signal }).catch(() => {});
      if (this.#hung) {
        await untilEither(this.#hung.promise, signal);
        due = performance.now();
      }
      if (signal.aborted) return;
      this.generationTokens++;
      const v = index % VOCAB.length;
      yield { index, id: 1000 + v, text: VOCAB[v], logprob: -0.25 - v / 64 };
    }
  }
}

function untilEither(p: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      signal.removeEventListener("abort", done);
      resolve();
    };
    signal.addEventListener("abort", done, { once: true });
    void p.then(done);
  });
}

/** A rough token count: whitespace-separated words, at least 1. */
export function countTokens(text: string): number {
  const words = text.trim().split(/\s+/).filter((w) => w.length > 0).length;
  return Math.max(1, words);
}
