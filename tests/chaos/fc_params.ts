/**
 * fast-check parameters for the property tests (`tests/property_*_test.ts`):
 * a failure prints its seed and path (fast-check does), and
 * `FC_SEED=<seed>` (or `CHAOS_SEED`) with optional `FC_PATH=<path>` replays
 * it; `FC_RUNS=<n>` changes the number of runs.
 *
 * @module
 */
import type { Parameters } from "fast-check";

/** Parameters for `fc.assert`, `numRuns` unless `FC_RUNS` says otherwise. */
export function fcParams<T>(numRuns: number): Parameters<T> {
  const env = (name: string) => {
    const v = Deno.env.get(name)?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  const seedText = env("FC_SEED") ?? env("CHAOS_SEED");
  const seed = seedText === undefined ? undefined : Number(seedText);
  if (seed !== undefined && !Number.isInteger(seed)) {
    throw new RangeError(`FC_SEED must be an integer, got "${seedText}"`);
  }
  const runs = Number(env("FC_RUNS") ?? numRuns);
  const path = env("FC_PATH");
  return {
    numRuns: runs,
    ...(seed !== undefined ? { seed: seed | 0 } : {}),
    ...(path !== undefined ? { path } : {}),
  };
}
