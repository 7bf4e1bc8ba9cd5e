/**
 * The short chaos run of `deno task test`: a few hundred requests of every
 * ingredient against a worker subprocess, fixed seed (or `CHAOS_SEED`),
 * autoscaler outages included; every invariant of the books must hold.
 * On failure the message is the whole books table with the replay command.
 *
 * @module
 */
import assert from "node:assert/strict";
import { formatBooks } from "./books.ts";
import { runChaos } from "./harness.ts";
import { seedFromEnv } from "./rng.ts";

/** The seed of the suite; `CHAOS_SEED=<n>` replays another. */
const SEED = seedFromEnv(20261201);

Deno.test(`chaos, seed ${SEED}: the books balance after 250 mixed requests`, async () => {
  const report = await runChaos({
    seed: SEED,
    requests: 250,
    concurrency: 16,
    requestDeadlineMs: 12_000,
    settleMs: 10_000,
  });
  assert.ok(report.ok, `\n${formatBooks(report)}`);
});
