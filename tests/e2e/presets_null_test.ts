/**
 * End to end, the `null` preset: `main.ts run --preset null` with no model
 * server, signed requests from the control-plane stand-in, and the
 * control port a queue consumer would call.
 */
import assert from "node:assert/strict";
import { inTempDir } from "./_presets.ts";
import { freePort } from "./_scenario.ts";

Deno.test("null preset: ready with max_perf 100, /reserve held until /release, a second one refused with 429", async () => {
  await inTempDir("null", async ({ start }) => {
    const control = freePort();
    const w = await start("null", { NULL_CONTROL_PORT: String(control) });
    await w.waitReady();
    assert.equal((await w.status()).max_perf, 100);

    const held = w.call("/reserve", { duration: 30 });
    // The first reservation is in flight once the worker reports its load.
    await w.waitNewLoad(100);
    const second = await w.call("/reserve", {});
    assert.equal(second.status, 429);
    await second.body?.cancel();

    const release = await fetch(`http://127.0.0.1:${control}/release`, {
      method: "POST",
    });
    assert.deepEqual(await release.json(), { released: true });
    const res = await held;
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      result: { released: "explicit", duration_cap: 30 },
    });
    const reports = w.cp.statusReports.map((r) =>
      r.body as Record<string, unknown>
    );
    assert.ok(reports.some((b) => b.max_perf === 100), "max_perf reported");
  });
});
