import assert from "node:assert/strict";
import {
  completionsToConverge,
  ThroughputEstimator,
} from "../lib/traffic/throughput.ts";

type Pattern = "even" | "uneven" | "batched";

/**
 * A closed-loop model server: `slots` requests always in flight, each of
 * `workload(i)` units served at `slotRate(i)` units/s per slot, the next one
 * started the moment a slot frees up. The slots start evenly staggered,
 * unevenly staggered or all at once ("batched": they then finish together).
 * Completions reach `onDone` in completion order.
 */
function simulate(options: {
  slots: number;
  requests: number;
  pattern: Pattern;
  workload: (i: number) => number;
  slotRate: (i: number) => number;
  onDone: (w: number, start: number, end: number, i: number) => void;
}): void {
  const { slots, requests, pattern, workload, slotRate, onDone } = options;
  const inFlight: { i: number; w: number; start: number; end: number }[] = [];
  let next = 0;
  const launch = (at: number): void => {
    const i = next++;
    const w = workload(i);
    inFlight.push({ i, w, start: at, end: at + (w / slotRate(i)) * 1000 });
  };
  const firstMs = (workload(-1) / slotRate(0)) * 1000;
  for (let s = 0; s < slots; s++) {
    const offset = pattern === "batched"
      ? 0
      : pattern === "even"
      ? (s * firstMs) / slots
      : ((s * 7919) % 1500) / 1500 * firstMs;
    launch(offset);
  }
  while (inFlight.length > 0) {
    inFlight.sort((a, b) => a.end - b.end);
    const done = inFlight.shift()!;
    onDone(done.w, done.start, done.end, done.i);
    if (next < requests) launch(done.end);
  }
}

function within(
  value: number | undefined,
  truth: number,
  eps: number,
): boolean {
  return value !== undefined && Math.abs(value - truth) / truth <= eps;
}

/**
 * Records every completion; collects what a reader saw between time steps
 * once `settle` completions are in (the start-up transient has decayed).
 */
function observe(est: ThroughputEstimator, settle: number): {
  onDone: (w: number, s: number, e: number) => void;
  seen: number[];
} {
  const seen: number[] = [];
  let last = NaN;
  return {
    seen,
    onDone: (w, s, e) => {
      // Completions at the same instant land together; read between instants.
      if (e !== last && est.samples >= settle) seen.push(est.value!);
      last = e;
      est.recordCompletion(w, s, e);
    },
  };
}

// Worst steady-state error allowed per pattern with alpha = 0.1: exact for
// even staggering; alpha / 2 otherwise (the documented bound).
const TOLERANCE: Record<Pattern, number> = {
  even: 0.002,
  uneven: 0.01,
  batched: 0.05,
};

for (const pattern of ["even", "uneven", "batched"] as const) {
  Deno.test(`ThroughputEstimator measures total units/s of parallel requests (${pattern})`, () => {
    const est = new ThroughputEstimator();
    const { seen, onDone } = observe(est, 200);
    simulate({
      slots: 4,
      requests: 400,
      pattern,
      workload: () => 100,
      slotRate: () => 50,
      onDone,
    });
    // 4 slots × 50 units/s, what a benchmark at concurrency 4 would say.
    assert.equal(est.samples, 400);
    assert.ok(seen.length >= 40);
    const worst = Math.max(...seen.map((v) => Math.abs(v - 200) / 200));
    assert.ok(worst <= TOLERANCE[pattern], `worst error ${worst}`);
  });
}

Deno.test("ThroughputEstimator tracks mixed request sizes", () => {
  const est = new ThroughputEstimator();
  const { seen, onDone } = observe(est, 400);
  let seed = 42;
  const random = (): number =>
    (seed = (seed * 16807) % 2147483647) / 2147483647;
  simulate({
    slots: 8,
    requests: 2000,
    pattern: "uneven",
    workload: () => 20 + Math.floor(random() * 400),
    slotRate: () => 25,
    onDone,
  });
  assert.ok(seen.length >= 1000);
  const worst = Math.max(...seen.map((v) => Math.abs(v - 200) / 200));
  assert.ok(worst < 0.1, `worst error ${worst}`);
});

Deno.test("ThroughputEstimator ignores idle time between requests", () => {
  const est = new ThroughputEstimator({ minSamples: 5 });
  for (let i = 0; i < 5; i++) {
    // 100 units in 1 s, then 9 s of idle.
    est.recordCompletion(100, i * 10_000, i * 10_000 + 1000);
  }
  assert.ok(within(est.value, 100, 1e-9), `value ${est.value}`);
});

Deno.test("ThroughputEstimator merges a long request finishing after short ones", () => {
  const est = new ThroughputEstimator({ alpha: 1e-9, minSamples: 3 });
  // Busy union is [0, 1] and [2, 10]: 9 s, though [5, 6] finished first.
  est.recordCompletion(10, 0, 1000);
  est.recordCompletion(10, 5000, 6000);
  est.recordCompletion(70, 2000, 10_000);
  assert.ok(within(est.value, 90 / 9, 1e-6), `value ${est.value}`);
});

Deno.test("ThroughputEstimator is undefined until minSamples", () => {
  const est = new ThroughputEstimator({ minSamples: 3 });
  est.recordCompletion(10, 0, 100);
  est.recordCompletion(10, 100, 200);
  assert.equal(est.value, undefined);
  est.recordCompletion(10, 200, 300);
  assert.ok(within(est.value, 100, 1e-9));
  est.reset();
  assert.equal(est.samples, 0);
  assert.equal(est.value, undefined);
});

for (const change of [2, 0.5]) {
  Deno.test(`ThroughputEstimator converges to a rate ×${change} within the documented bound`, () => {
    const alpha = 0.1;
    const slots = 4;
    const est = new ThroughputEstimator({ alpha });
    const switchAt = 400;
    let before: number | undefined;
    let done = 0;
    let since = 0;
    let settled: number | undefined;
    simulate({
      slots,
      requests: switchAt + 400,
      pattern: "even",
      workload: () => 100,
      // Requests started after the switch are served at the new rate.
      slotRate: (i) => (i < switchAt ? 50 : 50 * change),
      onDone: (w, s, e, i) => {
        est.recordCompletion(w, s, e);
        // Before any request started after the switch can have finished.
        if (++done === switchAt - slots) before = est.value;
        if (i < switchAt) return;
        since++;
        // Must stay within 10% from then on, not merely pass through.
        if (within(est.value, slots * 50 * change, 0.1)) settled ??= since;
        else settled = undefined;
      },
    });
    assert.ok(within(before, slots * 50, 0.002), `before ${before}`);
    const bound = completionsToConverge({
      alpha,
      change,
      eps: 0.1,
      concurrency: slots,
    });
    assert.ok(settled !== undefined, "never converged");
    assert.ok(settled <= bound, `took ${settled} completions, bound ${bound}`);
    // The bound is not loose by orders of magnitude.
    assert.ok(
      settled > bound / 4,
      `took ${settled} completions, bound ${bound}`,
    );
  });
}

Deno.test("completionsToConverge() gives the documented example", () => {
  // (4 / 0.1) × 2 × ln(5) = 128.8 → 129, plus 4 in flight.
  const options = { alpha: 0.1, eps: 0.1, concurrency: 4 };
  assert.equal(completionsToConverge({ ...options, change: 2 }), 133);
  assert.equal(completionsToConverge({ ...options, change: 1 }), 4);
});

Deno.test("ThroughputEstimator rejects bad options and samples", () => {
  assert.throws(() => new ThroughputEstimator({ alpha: 0 }), RangeError);
  assert.throws(() => new ThroughputEstimator({ minSamples: 0 }), RangeError);
  const est = new ThroughputEstimator();
  assert.throws(() => est.recordCompletion(-1, 0, 1), RangeError);
  assert.throws(() => est.recordCompletion(1, 5, 1), RangeError);
});
