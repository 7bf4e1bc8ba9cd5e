/**
 * A small seeded PRNG (sfc32, seeded through splitmix32) so a chaos run is
 * replayable from its seed: the same seed gives the same request plan, the
 * same per-request parameters and the same outage schedule.
 *
 * @module
 */

/** Deterministic random numbers from a 32-bit seed. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** Creates a generator; equal seeds give equal sequences. */
  constructor(seed: number) {
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** A float in [0, 1). */
  float(): number {
    return this.u32() / 0x1_0000_0000;
  }

  /** An integer in [min, max] (both included). */
  int(min: number, max: number): number {
    return min + Math.floor(this.float() * (max - min + 1));
  }

  /** `true` with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.float() * items.length)];
  }

  /** One key of `weights`, with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    const total = entries.reduce((s, [, w]) => s + w, 0);
    let x = this.float() * total;
    for (const [k, w] of entries) {
      if ((x -= w) < 0) return k;
    }
    return entries[entries.length - 1][0];
  }

  /** A child generator for `label` (independent of later draws here). */
  fork(label: number): Rng {
    return new Rng(mixSeed(this.u32(), label));
  }
}

/** Combines a seed and a label into a new 32-bit seed. */
export function mixSeed(seed: number, label: number): number {
  let z = (seed ^ Math.imul(label + 1, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x2c1b3c6d);
  z = Math.imul(z ^ (z >>> 12), 0x297a2d39);
  return (z ^ (z >>> 15)) >>> 0;
}

/**
 * A seed from the environment (`CHAOS_SEED`, then `FC_SEED`), else a fresh
 * random one; always a 32-bit unsigned integer.
 */
export function seedFromEnv(fallback?: number): number {
  for (const name of ["CHAOS_SEED", "FC_SEED"]) {
    const v = Deno.env.get(name);
    if (v !== undefined && v.trim() !== "") return parseSeed(v);
  }
  return fallback ?? (crypto.getRandomValues(new Uint32Array(1))[0]);
}

/** Parses a seed given on the command line or in the environment. */
export function parseSeed(text: string): number {
  const n = Number(text.trim());
  if (!Number.isInteger(n)) {
    throw new RangeError(`seed must be an integer, got "${text}"`);
  }
  return n >>> 0;
}
