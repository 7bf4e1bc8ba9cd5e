/**
 * The live page's time series and request list: per-second load that
 * carries over quiet seconds, throughput averaged over 5 s, a fixed
 * window, and the newest-first list of at most N requests.
 *
 * @module
 */
import assert from "node:assert/strict";
import { RecentList, SeriesBins } from "../lib/metrics/live_view.ts";

const T0 = 1_800_000_000_000;

Deno.test("series: a second shows its peak load, quiet seconds carry the last, throughput is served per second over 5 s", () => {
  const bins = new SeriesBins(10);
  bins.record(T0 + 100, 300);
  bins.record(T0 + 900, 200, 100);
  bins.record(T0 + 3_500, 0, 200);
  const points = bins.points(T0 + 5_200, 6);
  assert.deepEqual(points.map((p) => p.t - T0), [
    0,
    1000,
    2000,
    3000,
    4000,
    5000,
  ]);
  assert.deepEqual(
    points.map((p) => p.load),
    [300, 200, 200, 200, 0, 0],
    "a second shows its peak, a quiet one the load it kept",
  );
  assert.deepEqual(
    points.map((p) => p.throughput),
    [20, 20, 20, 60, 60, 40],
    "100 then 200 served, averaged over the last 5 s",
  );
  // The window is the last 10 s: older seconds are gone, the load stays.
  const later = bins.points(T0 + 30_000);
  assert.equal(later.length, 10);
  assert.ok(later.every((p) => p.load === 0 && p.throughput === 0));
});

Deno.test("series: before the first update in the window the load is what it was", () => {
  const bins = new SeriesBins(5);
  bins.record(T0, 50);
  bins.record(T0 + 7_000, 80);
  const points = bins.points(T0 + 8_000);
  assert.deepEqual(points.map((p) => p.load), [50, 50, 50, 80, 80]);
});

Deno.test("recent list: newest first, at most N, updated in place", () => {
  const list = new RecentList<{ n: number; state: string }>(3);
  for (let n = 1; n <= 4; n++) list.set(String(n), { n, state: "routed" });
  assert.deepEqual(list.list().map((x) => x.n), [4, 3, 2]);
  list.set("3", { n: 3, state: "Success" });
  assert.deepEqual(list.list().map((x) => [x.n, x.state]), [
    [4, "routed"],
    [3, "Success"],
    [2, "routed"],
  ]);
  assert.equal(list.get("1"), undefined);
});
