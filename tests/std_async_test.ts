import assert from "node:assert/strict";
import {
  abortable,
  deadline,
  delay,
  retry,
  RetryError,
} from "../lib/std/async.ts";

// Each test runs under --sanitize-ops: a timer left behind fails it.

Deno.test("delay() resolves once the time has passed", async () => {
  const start = performance.now();
  await delay(30);
  assert.ok(performance.now() - start >= 29);
});

Deno.test("delay() rejects with the signal's reason, at once and later", async () => {
  const reason = new Error("stop");
  await assert.rejects(
    delay(60_000, { signal: AbortSignal.abort(reason) }),
    reason,
  );
  const controller = new AbortController();
  const waiting = delay(60_000, { signal: controller.signal });
  controller.abort(reason);
  await assert.rejects(waiting, reason);
});

Deno.test("delay() with a signal that never aborts resolves and lets go of it", async () => {
  const controller = new AbortController();
  await delay(1, { signal: controller.signal });
  controller.abort(); // after settling: no late rejection
});

Deno.test("deadline() settles as the promise does when it is in time", async () => {
  assert.equal(await deadline(Promise.resolve(42), 1000), 42);
  const boom = new Error("boom");
  await assert.rejects(deadline(Promise.reject(boom), 1000), boom);
});

Deno.test("deadline() lets go of its timer and signal once the promise settles", async () => {
  // A timer still pending at the end fails the test (--sanitize-ops), and
  // an abort after settling must not turn into a late rejection.
  const controller = new AbortController();
  assert.equal(
    await deadline(Promise.resolve("in time"), 300_000, {
      signal: controller.signal,
    }),
    "in time",
  );
  const boom = new Error("boom");
  await assert.rejects(deadline(Promise.reject(boom), 300_000), boom);
  controller.abort();
});

Deno.test("deadline()s that settled in time hold no memory for the rest of their time limit", async () => {
  // Measured in a fresh process after a full GC: 20,000 settled deadlines
  // of 5 minutes (a request body's default limit) must not stay alive.
  const code = `
    import { deadline } from ${
    JSON.stringify(import.meta.resolve("../lib/std/async.ts"))
  };
    const controller = new AbortController();
    const run = async (n) => {
      for (let i = 0; i < n; i++) {
        await deadline(Promise.resolve(i), 300_000, { signal: controller.signal });
      }
    };
    await run(100);
    gc();
    const before = Deno.memoryUsage().heapUsed;
    await run(20_000);
    gc();
    console.log(Deno.memoryUsage().heapUsed - before);
    Deno.exit(0);
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc", code],
    stdout: "piped",
  }).output();
  assert.equal(out.code, 0);
  const retained = Number(new TextDecoder().decode(out.stdout));
  assert.ok(retained < 1_000_000, `retained ${retained} bytes`);
});

Deno.test("deadline() rejects with a TimeoutError DOMException", async () => {
  const never = new Promise<never>(() => {});
  await assert.rejects(deadline(never, 20), (e: unknown) => {
    assert.ok(e instanceof DOMException);
    assert.equal(e.name, "TimeoutError");
    return true;
  });
});

Deno.test("deadline() rejects with the signal's reason when it aborts first", async () => {
  const never = new Promise<never>(() => {});
  const controller = new AbortController();
  const reason = new Error("shutting down");
  const limited = deadline(never, 60_000, { signal: controller.signal });
  controller.abort(reason);
  await assert.rejects(limited, reason);
  await assert.rejects(
    deadline(never, 60_000, { signal: AbortSignal.abort(reason) }),
    reason,
  );
});

Deno.test("retry() calls again after each failure, waiting minTimeout * multiplier^n", async () => {
  const times: number[] = [];
  const result = await retry(() => {
    times.push(performance.now());
    if (times.length < 4) throw new Error(`try ${times.length}`);
    return "done";
  }, { minTimeout: 10, multiplier: 2, jitter: 0 });
  assert.equal(result, "done");
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  gaps.forEach((gap, i) => assert.ok(gap >= 10 * 2 ** i - 1, `gaps ${gaps}`));
});

Deno.test("retry() throws a RetryError with the last failure as cause", async () => {
  let calls = 0;
  await assert.rejects(
    retry(async () => {
      await Promise.resolve();
      throw new Error(`failure ${++calls}`);
    }, { maxAttempts: 3, minTimeout: 1, jitter: 0 }),
    (e: unknown) => {
      assert.ok(e instanceof RetryError);
      assert.equal(e.name, "RetryError");
      assert.equal((e.cause as Error).message, "failure 3");
      return true;
    },
  );
  assert.equal(calls, 3);
});

Deno.test("retry() throws an error isRetriable refuses as it is, without waiting", async () => {
  let calls = 0;
  const fatal = new TypeError("fatal");
  await assert.rejects(
    retry(() => {
      calls++;
      throw fatal;
    }, { minTimeout: 60_000, isRetriable: (e) => !(e instanceof TypeError) }),
    fatal,
  );
  assert.equal(calls, 1);
});

Deno.test("retry() caps each wait at maxTimeout and jitter shortens it", async () => {
  // Uncapped, the second wait would be 1000 s; full jitter with random()
  // near 1 makes a 60 s backoff near 0.
  let calls = 0;
  const start = performance.now();
  await assert.rejects(
    retry(() => {
      throw new Error(`failure ${++calls}`);
    }, {
      maxAttempts: 3,
      minTimeout: 5,
      multiplier: 200_000,
      maxTimeout: 10,
      jitter: 0,
    }),
    RetryError,
  );
  assert.equal(calls, 3);
  const random = Math.random;
  Math.random = () => 0.9999999;
  try {
    await retry(() => {
      if (++calls === 4) throw new Error("once");
    }, { minTimeout: 60_000, jitter: 1 });
  } finally {
    Math.random = random;
  }
  assert.equal(calls, 5);
  assert.ok(performance.now() - start < 5_000);
});

Deno.test("retry() stops waiting and rejects with the reason when its signal aborts", async () => {
  const controller = new AbortController();
  const reason = new Error("worker is shutting down");
  let calls = 0;
  const pending = retry(() => {
    calls++;
    queueMicrotask(() => controller.abort(reason));
    throw new Error("down");
  }, { minTimeout: 60_000, signal: controller.signal });
  await assert.rejects(pending, reason);
  assert.equal(calls, 1);
  await assert.rejects(
    retry(() => calls++, { signal: AbortSignal.abort(reason) }),
    reason,
  );
  assert.equal(calls, 1);
});

Deno.test("retry() refuses options out of range before any attempt", async () => {
  let calls = 0;
  const fn = () => calls++;
  for (
    const options of [
      { maxAttempts: 0 },
      { maxAttempts: 1.5 },
      { multiplier: 0.5 },
      { maxTimeout: 0 },
      { minTimeout: -1 },
      { minTimeout: 2000, maxTimeout: 1000 },
      { jitter: 2 },
      { jitter: NaN },
    ]
  ) {
    await assert.rejects(
      retry(fn, options),
      RangeError,
      JSON.stringify(options),
    );
  }
  assert.equal(calls, 0);
});

Deno.test("abortable() settles as the promise does, or rejects with the signal's reason once it aborts first", async () => {
  const ac = new AbortController();
  assert.equal(await abortable(Promise.resolve(7), ac.signal), 7);
  await assert.rejects(
    abortable(Promise.reject(new Error("own")), ac.signal),
    /own/,
  );
  const never = new Promise<number>(() => {});
  const pending = abortable(never, ac.signal);
  ac.abort(new Error("gone"));
  await assert.rejects(pending, /gone/);
  await assert.rejects(abortable(Promise.resolve(1), ac.signal), /gone/);
});
