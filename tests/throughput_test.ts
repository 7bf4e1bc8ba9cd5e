import assert from "node:assert/strict";
import {
  completionsToConverge,
  ThroughputEstimator,
} from "../lib/throughput.ts";

/**
 * A closed-loop model server: `slots` requests always in flight, each of
 * `workload(i)` units served at `slotRate(i)` units/s, started the moment a
 * slot frees up. Completions are fed to `onDone` in completion order.
 */
function simulate(options: {
  slots: number;
  requests: number;
  workload: (i: number) => number;
  slotRate: (i: number) => number;
  onDone: (w: number, start: number, end: number, i: number) => void;
  batched?: boolean;
}): void {
  const { slots, requests, workload, slotRate, onDone } = options;
  const inFlight: { i: number; w: number; start: number; end: number }[] = [];
  let next = 0;
  const launch = (at: number): void => {
    const i = next++;
    const w = workload(i);
    inFlight.push({ i, w, start: at, end: at + (w / slotRate(i)) * 1000 });
  };
  // Staggered: the slots finish at uneven offsets; batched: all at once.
  const offset = (s: number): number => options.batched ? 0 : (s * 7919) % 1500;
  for (let s = 0; s < slots; s++) launch(offset(s));
  while (inFlight.length > 0) {
    inFlight.sort((a, b) => a.end - b.end);
    const done = inFlight.shift()!;
    onDone(done.w, done.start, done.end, done.i);
    if (next < requests) launch(done.end);
  }
}

const within = (
  value: number | undefined,
  truth: number,
  eps: number,
): boolean => value !== undefined && Math.abs(value - truth) / truth <= eps;

for (const batched of [false, true]) {
  Deno.test(`ThroughputEstimator measures total units/s with parallel requests (${batched ? "batched" : "staggered"})`, () => {
    const est = new ThroughputEstimator();
    const seen: number[] = [];
    simulate({
      slots: 4,
      requests: 200,
      batched,
      workload: () => 100,
      slotRate: () => 50,
      onDone: (w, s, e) => {
        est.recordCompletion(w, s, e);
        if (est.value !== undefined) seen.push(est.value);
      },
    });
    // 4 slots × 50 units/s each, as a benchmark at concurrency 4 would say,
    // after every completion (no ripple with the completion pattern).
    assert.equal(est.samples, 200);
    const worst = Math.max(
      ...seen.slice(40).map((v) => Math.abs(v - 200) / 200),
    );
    assert.ok(worst < 0.01, `worst relative error ${worst}`);
  });
}

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
    const rate = (i: number): number => (i < switchAt ? 50 : 50 * change);
    let beforeSwitch: number | undefined;
    let sinceSwitch = 0;
    let firstGood: number | undefined;
    simulate({
      slots,
      requests: switchAt + 300,
      workload: () => 100,
      slotRate: rate,
      onDone: (w, s, e, i) => {
        est.recordCompletion(w, s, e);
        if (i === switchAt - 1) beforeSwitch = est.value;
        if (i < switchAt) return;
        sinceSwitch++;
        const good = within(est.value, slots * 50 * change, 0.1);
        if (good) firstGood ??= sinceSwitch;
        else firstGood = undefined; // must stay within, not pass through
      },
    });
    assert.ok(within(beforeSwitch, slots * 50, 0.02), `before ${beforeSwitch}`);
    const bound = completionsToConverge({
      alpha,
      change,
      eps: 0.1,
      concurrency: slots,
    });
    assert.ok(firstGood !== undefined, "never converged");
    assert.ok(
      firstGood <= bound,
      `took ${firstGood} completions, bound ${bound}`,
    );
  });
}

Deno.test("ThroughputEstimator tracks mixed request sizes", () => {
  const est = new ThroughputEstimator();
  let seed = 42;
  const random = (): number =>
    (seed = (seed * 16807) % 2147483647) / 2147483647;
  const sizes: number[] = [];
  simulate({
    slots: 8,
    requests: 2000,
    workload: (i) => (sizes[i] = 20 + Math.floor(random() * 400)),
    slotRate: () => 25,
    onDone: (w, s, e) => est.recordCompletion(w, s, e),
  });
  assert.ok(within(est.value, 8 * 25, 0.25), `value ${est.value}`);
});

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
