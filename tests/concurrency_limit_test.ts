import assert from "node:assert/strict";
import {
  ConcurrencyLimit,
  CONVERGENCE_SAMPLES,
} from "../lib/traffic/concurrency_limit.ts";

/** One stretch of the simulated engine. */
interface Phase {
  /** Requests the engine runs at full speed; beyond, they share it. */
  knee: number;
  /** Time one request needs at full speed, ms. */
  workMs: number;
  /** Answers in this phase. */
  samples: number;
}

/** The slot count after each answer; -1 while a probe runs. */
type Trace = number[];

/**
 * A processor-sharing engine behind the limit, in virtual time (1 ms
 * steps), always backlogged (more clients than slots): a request is sent
 * whenever a slot is free, progresses at `min(1, knee / inFlight)` per ms
 * and its first byte is its completion (a non-streamed answer). Work
 * varies ±10% by a fixed-seed generator: the run is deterministic.
 */
function simulate(limit: ConcurrencyLimit, phases: Phase[]): Trace[] {
  let seed = 1;
  const random = () =>
    (seed = (seed * 1103515245 + 12345) % 2147483648) /
    2147483648;
  const inFlight: { left: number; sentAt: number; atSend: number }[] = [];
  const traces: Trace[] = [];
  let t = 0;
  for (const phase of phases) {
    const trace: Trace = [];
    while (trace.length < phase.samples) {
      while (inFlight.length < limit.slots) {
        inFlight.push({
          left: phase.workMs * (0.9 + 0.2 * random()),
          sentAt: t,
          atSend: inFlight.length + 1,
        });
      }
      const rate = Math.min(1, phase.knee / inFlight.length);
      t++;
      for (let i = inFlight.length - 1; i >= 0; i--) {
        const r = inFlight[i];
        r.left -= rate;
        if (r.left > 0) continue;
        inFlight.splice(i, 1);
        const slots = limit.sample(t - r.sentAt, r.atSend);
        assert.ok(Number.isInteger(slots), `slots ${slots}`);
        trace.push(limit.probing ? -1 : slots);
      }
    }
    traces.push(trace);
  }
  return traces;
}

/** Answers until the slot count stays within [lo, hi] (probes aside). */
function settledAfter(trace: Trace, lo: number, hi: number): number {
  let last = -1;
  trace.forEach((v, i) => {
    if (v >= 0 && (v < lo || v > hi)) last = i;
  });
  return last + 1;
}

function tail(trace: Trace, n: number): number[] {
  return trace.slice(-n).filter((v) => v >= 0);
}

Deno.test("the limit settles near the knee and follows it when it moves", () => {
  const limit = new ConcurrencyLimit({ min: 1, max: 64 });
  const phases: Phase[] = [
    { knee: 16, workMs: 50, samples: 1500 },
    { knee: 4, workMs: 50, samples: 1500 }, // the engine takes fewer
    { knee: 24, workMs: 50, samples: 1500 }, // ... then more
    { knee: 24, workMs: 100, samples: 1500 }, // twice slower
    { knee: 24, workMs: 25, samples: 1500 }, // four times faster
    { knee: 24, workMs: 35, samples: 1500 }, // a little slower
  ];
  const traces = simulate(limit, phases);
  phases.forEach((p, i) => {
    const what = `knee ${p.knee}, ${p.workMs} ms`;
    const settled = settledAfter(traces[i], p.knee, 2 * p.knee);
    // A slowdown under 2× waits for the periodic probe (every 500).
    const bound = CONVERGENCE_SAMPLES + (i === 5 ? 500 : 0);
    assert.ok(
      settled <= bound,
      `${what}: settled after ${settled} answers`,
    );
    const end = tail(traces[i], 500);
    // Past the knee latency grows with the slots: the limit stops at
    // about tolerance (1.5) × knee, a little under with the noise.
    assert.ok(Math.min(...end) >= p.knee, `${what}: ${Math.min(...end)}`);
    assert.ok(Math.max(...end) <= 1.5 * p.knee, `${what}: ${Math.max(...end)}`);
  });
});

Deno.test("the limit never leaves [min, max]", () => {
  // An engine that never saturates: the limit climbs to max and stays.
  const high = new ConcurrencyLimit({ min: 2, max: 12, initial: 2 });
  const [up] = simulate(high, [{ knee: 1000, workMs: 20, samples: 800 }]);
  assert.ok(up.every((v) => v <= 12), "above max");
  assert.ok(settledAfter(up, 12, 12) <= 200, `reached max late`);
  // An engine that takes one at a time: it sinks to min. A probe cannot
  // go below min, so the baseline becomes the first byte at min and the
  // limit stays within tolerance (1.5) of it.
  const low = new ConcurrencyLimit({ min: 3, max: 40, initial: 40 });
  const [down] = simulate(low, [{ knee: 1, workMs: 20, samples: 800 }]);
  assert.ok(down.every((v) => v === -1 || (v >= 3 && v <= 40)));
  const end = tail(down, 200);
  assert.ok(Math.min(...end) >= 3 && Math.max(...end) <= 5, `${end}`);
});

Deno.test("a tolerance closer to 1 settles closer to the knee", () => {
  const limit = new ConcurrencyLimit({ min: 1, max: 64, tolerance: 1.25 });
  const [trace] = simulate(limit, [{ knee: 16, workMs: 50, samples: 1500 }]);
  const end = tail(trace, 500);
  assert.ok(Math.min(...end) >= 16 && Math.max(...end) <= 20, `${end}`);
});

Deno.test("no growth without slots in use", () => {
  const limit = new ConcurrencyLimit({ min: 1, max: 64, initial: 10 });
  // Fast answers, but only 2 of 10 slots busy: nothing learned about more.
  for (let i = 0; i < 100; i++) limit.sample(10, 2);
  assert.equal(limit.slots, 10);
  // Busy slots and the same fast answers: it grows.
  for (let i = 0; i < 100; i++) limit.sample(10, limit.slots);
  assert.ok(limit.slots > 10, `${limit.slots}`);
});

Deno.test("the engine's own queue cuts the limit and stops growth", () => {
  const limit = new ConcurrencyLimit({ min: 1, max: 64, initial: 20 });
  for (let i = 0; i < 5; i++) limit.sample(100, 20);
  // The engine runs 15 and queues 5: our share shrinks in proportion.
  const cut = Math.round(limit.limit * 15 / 20);
  assert.equal(limit.engine(15, 5), cut);
  for (let i = 0; i < 50; i++) limit.sample(100, limit.slots);
  assert.equal(limit.slots, cut, "grew while the engine queued");
  limit.engine(15, 0);
  for (let i = 0; i < 50; i++) limit.sample(100, limit.slots);
  assert.ok(limit.slots > cut);
  // Figures the engine lacks change nothing.
  const before = limit.slots;
  assert.equal(limit.engine(undefined, undefined), before);
  assert.equal(limit.engine(3, NaN), before);
});

Deno.test("an overload answer cuts the limit by a fifth, not below min", () => {
  const limit = new ConcurrencyLimit({ min: 4, max: 64, initial: 20 });
  assert.equal(limit.drop(), 16);
  for (let i = 0; i < 20; i++) limit.drop();
  assert.equal(limit.slots, 4);
});

Deno.test("a slower engine is learned by a probe, not mistaken for overload", () => {
  const limit = new ConcurrencyLimit({ min: 1, max: 64, initial: 8 });
  const [, slower] = simulate(limit, [
    { knee: 8, workMs: 20, samples: 600 },
    { knee: 8, workMs: 80, samples: 600 },
  ]);
  assert.ok(slower.includes(-1), "no probe after the slowdown");
  const end = tail(slower, 200);
  assert.ok(Math.min(...end) >= 8 && Math.max(...end) <= 12, `${end}`);
});

Deno.test("bad settings and bad samples", () => {
  assert.throws(() => new ConcurrencyLimit({ min: 0, max: 4 }), /min/);
  assert.throws(() => new ConcurrencyLimit({ min: 5, max: 4 }), /max/);
  assert.throws(
    () => new ConcurrencyLimit({ min: 1, max: 4, initial: 9 }),
    /initial/,
  );
  assert.throws(
    () => new ConcurrencyLimit({ min: 1, max: 4, tolerance: 1 }),
    /tolerance/,
  );
  const limit = new ConcurrencyLimit({ min: 1, max: 4 });
  assert.equal(limit.slots, 4); // default initial: min(max, 8)
  assert.equal(limit.sample(NaN, 4), 4);
  assert.equal(limit.sample(-1, 4), 4);
  assert.equal(limit.sample(Infinity, 4), 4);
  assert.equal(limit.baseline, Infinity);
});
