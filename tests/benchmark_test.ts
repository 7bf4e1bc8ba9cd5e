import assert from "node:assert/strict";
import { join } from "node:path";
import {
  BenchmarkError,
  readBenchmarkCache,
  type RoundResult,
  runBenchmark,
  writeBenchmarkCache,
} from "../lib/model/benchmark.ts";
import type { Payload } from "../lib/config/schemas.ts";

const RATE = 50; // units per second per request slot

/**
 * A model-server stand-in: a request of workload `w` takes `w / RATE`
 * seconds, with unlimited parallel slots, so concurrency C gives RATE * C.
 */
function standIn(status = 200): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const { w } = await req.json();
      await new Promise((r) => setTimeout(r, (w / RATE) * 1000));
      return new Response("done", { status });
    },
  );
}

function sender(
  server: Deno.HttpServer<Deno.NetAddr>,
): (payload: Payload, signal: AbortSignal) => Promise<boolean> {
  const url = `http://127.0.0.1:${server.addr.port}/generate`;
  return async (payload, signal) => {
    const res = await fetch(url, {
      method: "POST",
      body: JSON.stringify(payload),
      signal,
    });
    await res.body?.cancel();
    return res.ok;
  };
}

const base = {
  nextPayload: (): Payload => ({ w: 10 }),
  workload: (p: Payload): number => p.w as number,
  runs: 2,
  concurrency: 1,
  warmup: true,
};

for (const concurrency of [1, 8]) {
  Deno.test(`runBenchmark() measures ${RATE * concurrency} units/s at concurrency ${concurrency}`, async () => {
    await using server = standIn();
    const seen: RoundResult[] = [];
    const result = await runBenchmark({
      ...base,
      concurrency,
      send: sender(server),
      onRound: (r) => seen.push(r),
    });
    const truth = RATE * concurrency;
    for (const value of [result.best, result.median]) {
      assert.ok(
        Math.abs(value - truth) / truth < 0.15,
        `measured ${value}, expected ${truth} ± 15%`,
      );
    }
    assert.equal(result.ok, 2 * concurrency);
    assert.equal(result.failed, 0);
    assert.deepEqual(seen, result.rounds);
    assert.deepEqual(seen.map((r) => [r.index, r.total, r.ok]), [
      [1, 2, concurrency],
      [2, 2, concurrency],
    ]);
    assert.ok(seen.every((r) => r.seconds >= 0.19 && r.seconds < 0.4));
  });
}

Deno.test("runBenchmark() throws BenchmarkError when every request fails", async () => {
  await using server = standIn(500);
  await assert.rejects(
    runBenchmark({
      ...base,
      nextPayload: () => ({ w: 1 }),
      concurrency: 3,
      send: sender(server),
    }),
    (error: unknown) => {
      assert.ok(error instanceof BenchmarkError);
      assert.equal(error.message, "Benchmark failed: all 6 requests failed");
      return true;
    },
  );
});

Deno.test("runBenchmark() names the last cause when send throws", async () => {
  const refused = new TypeError("Connection refused (os error 111)");
  await assert.rejects(
    runBenchmark({
      ...base,
      warmup: false,
      send: () => Promise.reject(refused),
    }),
    (error: unknown) => {
      assert.ok(error instanceof BenchmarkError);
      assert.equal(
        error.message,
        "Benchmark failed: all 2 requests failed: Connection refused (os error 111)",
      );
      assert.equal(error.cause, refused);
      return true;
    },
  );
});

Deno.test("runBenchmark() counts partial failures and ignores the warm-up", async () => {
  let calls = 0;
  const result = await runBenchmark({
    ...base,
    runs: 3,
    concurrency: 4,
    // The warm-up (call 0) throws; later every other request fails.
    send: () => {
      const n = calls++;
      if (n === 0) return Promise.reject(new Error("cold"));
      return new Promise((r) => setTimeout(() => r(n % 2 === 0), 20));
    },
  });
  assert.equal(calls, 13);
  assert.equal(result.ok, 6);
  assert.equal(result.failed, 6);
  assert.ok(result.rounds.every((r) => r.ok === 2 && r.failed === 2));
  // Only successes count: 2 × 10 units in about 20 ms.
  assert.ok(result.best > 500 && result.best < 1000, `best ${result.best}`);
});

Deno.test("runBenchmark() stops when its signal aborts", async () => {
  const controller = new AbortController();
  let calls = 0;
  const pending = runBenchmark({
    ...base,
    runs: 100,
    signal: controller.signal,
    send: (_p, signal) =>
      new Promise((resolve) => {
        calls++;
        const timer = setTimeout(() => resolve(true), 10);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve(false);
        }, { once: true });
      }),
  });
  setTimeout(() => controller.abort(new Error("shutting down")), 35);
  await assert.rejects(pending, /shutting down/);
  assert.ok(calls < 10, `${calls} calls`);
});

Deno.test("runBenchmark() rejects bad runs and concurrency", async () => {
  const send = () => Promise.resolve(true);
  await assert.rejects(runBenchmark({ ...base, runs: 0, send }), RangeError);
  await assert.rejects(
    runBenchmark({ ...base, concurrency: 1.5, send }),
    RangeError,
  );
});

Deno.test("benchmark cache round-trips in Python's format", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, ".has_benchmark");
    assert.equal(await readBenchmarkCache(path), undefined);
    await writeBenchmarkCache(path, 50);
    assert.equal(await Deno.readTextFile(path), "50.0");
    assert.equal(await readBenchmarkCache(path), 50);
    await writeBenchmarkCache(path, 123.45);
    assert.equal(await Deno.readTextFile(path), "123.45");
    assert.equal(await readBenchmarkCache(path), 123.45);
    // No temp file is left behind by the atomic write.
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir), (e) => e.name), [
      ".has_benchmark",
    ]);
    // Files as Python writes them, with stray whitespace and extra lines.
    for (
      const [text, value] of [["  812.5 \r\nnext\n", 812.5], ["1e+16", 1e16], [
        "7",
        7,
      ]] as const
    ) {
      await Deno.writeTextFile(path, text);
      assert.equal(await readBenchmarkCache(path), value);
    }
    for (
      const garbage of [
        "",
        "fast",
        "nan",
        "inf",
        "-3.0",
        "0.0",
        "12abc",
        "\n50.0",
      ]
    ) {
      await Deno.writeTextFile(path, garbage);
      assert.equal(
        await readBenchmarkCache(path),
        undefined,
        JSON.stringify(garbage),
      );
    }
    await assert.rejects(writeBenchmarkCache(path, NaN), RangeError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeBenchmarkCache() writes the figure as Python's str(float)", async () => {
  // Expected values printed by CPython 3: str(float(x)).
  const cases: [number, string][] = [
    [50, "50.0"],
    [123.45, "123.45"],
    [0.1, "0.1"],
    [1 / 3, "0.3333333333333333"],
    [1e-4, "0.0001"],
    [1e-5, "1e-05"],
    [2.5e-7, "2.5e-07"],
    [9999999999999998, "9999999999999998.0"],
    [1e16, "1e+16"],
    [123456789012345680, "1.2345678901234568e+17"],
    [0, "0.0"],
  ];
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, ".has_benchmark");
    for (const [value, text] of cases) {
      await writeBenchmarkCache(path, value);
      assert.equal(await Deno.readTextFile(path), text);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
