/**
 * Run as a subprocess with `DENO_USR2_MEMORY_TRIM=1` by
 * `memory_trim_test.ts` (the signal would end a process started without
 * it): drives a `MemoryTrim` through start-up, a busy spell, a long quiet
 * and activity between looks, looking by hand, and prints the trims made
 * after each phase as one JSON line.
 */
import { MemoryTrim } from "../../lib/worker/memory_trim.ts";

let received = 0;
let inFlight = 0;
const trim = new MemoryTrim({
  usr2Trim: Deno.env.get("DENO_USR2_MEMORY_TRIM"),
  busy: () => inFlight > 0,
  activity: () => received,
  intervalMs: 3_600_000, // looks made by hand below
});
const looks = (n: number) => {
  for (let i = 0; i < n; i++) trim.look();
  return trim.trims;
};
// Deno sets its SIGUSR2 handler up once the event loop runs: not at once.
await new Promise((r) => setTimeout(r, 500));
trim.start();
const out: Record<string, number | boolean> = { enabled: trim.enabled };
out.afterStartup = looks(10);
inFlight = 1;
received = 5;
out.whileBusy = looks(20);
inFlight = 0;
out.quietAWhile = looks(14);
out.longQuiet = looks(1);
received = 6; // a request came and went between two looks
looks(1);
out.quietAgain = looks(16);
out.later = looks(5);
// The signals' trims run on Deno's side: let them land before exiting.
await new Promise((r) => setTimeout(r, 200));
trim.close();
console.log(JSON.stringify(out));
