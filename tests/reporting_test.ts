/**
 * `/worker_status/` and `/delete_requests/` from a real worker to the
 * control-plane stand-in (`dev/control_plane.ts`): the exact fields and
 * JSON types, how soon requests and lifecycle changes are reported, counters
 * that add up across reports, a 30-second autoscaler outage that loses and
 * duplicates nothing, a slow autoscaler that does not slow requests, and
 * one slower than the worker's report timeout that still gets every figure
 * exactly once.
 */
import assert from "node:assert/strict";
import type { Recorded } from "../dev/control_plane.ts";
import type { WorkerConfig } from "../lib/config/schemas.ts";
import type { WorkerStatus } from "../lib/autoscaler/wire.ts";
import {
  accepted,
  assertClose,
  deleteItems,
  percentile,
  type ReportingOptions,
  type ReportingSetup,
  type Running,
  statusOf,
  sumOf,
  withReportingWorker,
} from "./helpers/reporting.ts";
import { envelope, FAST } from "./helpers/worker.ts";
import { post, waitFor } from "./helpers/http.ts";

// The reference's field list (§7.1), in its order, typo included, and its
// number kinds: written out here, not read from the code under test.
const STATUS_FIELDS = (
  "id mtoken version loadtime cur_load rej_load new_load error_msg max_perf " +
  "cur_perf cur_capacity max_capacity num_requests_working " +
  "num_requests_recieved additional_disk_usage working_request_idxs url"
).split(" ");
const FLOAT_FIELDS =
  "loadtime cur_load rej_load new_load max_perf cur_perf additional_disk_usage"
    .split(" ");
const INT_FIELDS =
  "id cur_capacity max_capacity num_requests_working num_requests_recieved"
    .split(" ");

/** Parallel `/slow` and `/echo` whose workload is `payload.w`. */
function handlers(): WorkerConfig["handlers"] {
  return ["/slow", "/echo"].map((route) => ({
    route,
    allowParallelRequests: true,
    maxQueueTime: null,
    workload: { kind: "field" as const, path: "w", default: 1 },
  }));
}

/** {@linkcode withReportingWorker} on {@linkcode handlers}. */
function withSetup(
  options: Omit<ReportingOptions, "handlers">,
  fn: (s: ReportingSetup) => Promise<void>,
): Promise<void> {
  return withReportingWorker({ handlers: handlers(), ...options }, fn);
}

/** POSTs to the worker, reads the whole answer, returns status and ms taken. */
async function timed(
  w: Running,
  route: string,
  payload: Record<string, unknown>,
  idx: number,
): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  const res = await post(
    w.url,
    route,
    envelope(payload, { request_idx: idx, reqnum: idx }),
  );
  await res.arrayBuffer();
  return { status: res.status, ms: performance.now() - t0 };
}

/** Sends `count` requests over `lanes` concurrent lanes; latencies in ms. */
async function burst(
  w: Running,
  first: number,
  count: number,
  payload: (idx: number) => Record<string, unknown>,
  lanes = 4,
): Promise<number[]> {
  const ms: number[] = [];
  let next = first;
  const end = first + count;
  await Promise.all(Array.from({ length: lanes }, async () => {
    while (next < end) {
      const idx = next++;
      const r = await timed(w, "/slow", payload(idx), idx);
      assert.equal(r.status, 200);
      ms.push(r.ms);
    }
  }));
  return ms;
}

function assertStatusShape(r: Recorded): void {
  const b = r.body as Record<string, unknown>;
  assert.deepEqual(Object.keys(b), STATUS_FIELDS);
  for (const k of FLOAT_FIELDS) {
    assert.equal(typeof b[k], "number", k);
    assert.ok(Number.isFinite(b[k]), k);
  }
  for (const k of INT_FIELDS) {
    assert.ok(Number.isInteger(b[k]), `${k} = ${b[k]}`);
  }
  assert.equal(typeof b.mtoken, "string");
  assert.equal(typeof b.error_msg, "string");
  assert.equal(typeof b.url, "string");
  assert.equal(b.version, "1.1.0");
  assert.equal(b.cur_capacity, 0);
  assert.equal(b.max_capacity, 0);
  assert.ok(Array.isArray(b.working_request_idxs));
  for (const i of b.working_request_idxs as unknown[]) {
    assert.ok(Number.isInteger(i), `working_request_idxs holds ${i}`);
  }
  assert.equal(
    b.num_requests_working,
    (b.working_request_idxs as unknown[]).length,
  );
}

const hasIdx = (idx: number) => (b: unknown) =>
  (b as WorkerStatus).working_request_idxs.includes(idx) &&
  (b as WorkerStatus).cur_load > 0;

Deno.test("worker_status: the reference's fields with Python's JSON types", async () => {
  await withSetup({
    env: {
      CONTAINER_ID: "4242",
      MASTER_TOKEN: "tok-abc",
      PUBLIC_IPADDR: "203.0.113.5",
      VAST_TCP_PORT_3000: "41234",
    },
  }, async ({ cp, w }) => {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const slow = post(
      w.url,
      "/slow",
      envelope({ w: 2.5, delay_ms: 500 }, { request_idx: 7, reqnum: 70 }),
    );
    const busy = statusOf(await cp.waitFor("status", hasIdx(7), 2000));
    const res = await slow;
    assert.equal(res.status, 200);
    await res.body?.cancel();
    const idle = statusOf(
      await cp.waitFor(
        "status",
        (b) =>
          (b as WorkerStatus).cur_perf > 0 &&
          (b as WorkerStatus).num_requests_working === 0,
        2000,
      ),
    );

    for (const r of cp.statusReports) assertStatusShape(r);
    assert.equal(busy.id, 4242);
    assert.equal(busy.mtoken, "tok-abc");
    assert.equal(busy.url, "http://203.0.113.5:41234");
    assert.equal(busy.error_msg, "");
    assert.ok(busy.loadtime > 0, "loadtime once ready");
    assert.equal(busy.cur_load, 2.5);
    assert.deepEqual(busy.working_request_idxs, [7]);
    assert.equal(busy.num_requests_working, 1);
    assert.equal(busy.num_requests_recieved, 1);
    assert.equal(idle.cur_load, 0);
    assert.deepEqual(idle.working_request_idxs, []);
    assert.equal(idle.num_requests_recieved, 1, "never reset");
    assert.equal(idle.loadtime, busy.loadtime, "loadtime sent every time");
    assert.equal(
      sumOf(cp.statusReports, "new_load"),
      2.5,
      "received once, in some report",
    );
    assert.equal(sumOf(cp.statusReports, "cur_perf"), 2.5);
    assert.equal(sumOf(cp.statusReports, "rej_load"), 0);
  });
});

/** A `/slow` request of `units` that takes `ms`, as request `idx`. */
function slow(w: Running, units: number, ms: number, idx: number) {
  return post(
    w.url,
    "/slow",
    envelope({ w: units, delay_ms: ms }, { request_idx: idx }),
  );
}

Deno.test("a request is reported within 1.5 s of starting with the production 1 s tick", async () => {
  await withSetup({ timings: {} }, async ({ cp, w }) => {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    // Request A starts at a random phase of the tick; B right after a report
    // went out (the worst phase: a whole tick to wait).
    const tA = Date.now();
    const a = slow(w, 3, 2500, 101);
    const seenA = await cp.waitFor("status", hasIdx(101), 2000);
    const tB = Date.now();
    const b = slow(w, 4, 1500, 102);
    const seenB = await cp.waitFor("status", hasIdx(102), 2000);
    for (const r of await Promise.all([a, b])) {
      assert.equal(r.status, 200);
      await r.body?.cancel();
    }
    assert.ok(seenA.at - tA <= 1500, `A reported after ${seenA.at - tA} ms`);
    assert.ok(seenB.at - tB <= 1500, `B reported after ${seenB.at - tB} ms`);
    assert.equal(statusOf(seenB).cur_load, 7);
    assert.deepEqual(statusOf(seenB).working_request_idxs, [101, 102]);
  });
});

Deno.test("ready and error reach the autoscaler within 1 s of the transition", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-lifecycle-" });
  const log = `${dir}/model.log`;
  await Deno.writeTextFile(log, "loading weights\n");
  const FAILED = "torch.OutOfMemoryError: CUDA out of memory";
  try {
    // Production report loops (1 s tick, 10 s heartbeat): only a prompt
    // notification gets the transition out within 1 s.
    await withSetup({
      timings: { logPollMs: 50 },
      config: {
        modelLogFile: log,
        logActions: { onLoad: ["Uvicorn running on"], onError: [FAILED] },
      },
    }, async ({ cp, w }) => {
      const at: Record<string, number> = {};
      w.lifecycle.subscribe((t) => at[t.to] ??= Date.now());
      const first = statusOf(await cp.waitFor("status", () => true, 2000));
      assert.equal(first.loadtime, 0, "0.0 before the model is loaded");
      assert.equal(first.error_msg, "");

      await Deno.writeTextFile(log, "INFO: Uvicorn running on :8000\n", {
        append: true,
      });
      const ready = await cp.waitFor(
        "status",
        (b) => (b as WorkerStatus).loadtime > 0,
        3000,
      );
      assert.ok(at.ready, "ready transition seen");
      assert.ok(
        ready.at - at.ready <= 1000,
        `ready reported ${ready.at - at.ready} ms after the transition`,
      );
      const readyStatus = statusOf(ready);
      assert.equal(readyStatus.error_msg, "");
      assert.ok(
        readyStatus.loadtime <= performance.now() / 1000,
        "seconds since the process started",
      );

      await Deno.writeTextFile(log, `${FAILED}. Tried to allocate 2 GiB\n`, {
        append: true,
      });
      const error = await cp.waitFor(
        "status",
        (b) => (b as WorkerStatus).error_msg !== "",
        3000,
      );
      assert.ok(at.error, "error transition seen");
      assert.ok(
        error.at - at.error <= 1000,
        `error reported ${error.at - at.error} ms after the transition`,
      );
      assert.equal(
        statusOf(error).error_msg,
        `${FAILED}. Tried to allocate 2 GiB`,
      );
      assert.equal(statusOf(error).loadtime, readyStatus.loadtime);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("new_load and cur_perf summed over all reports equal the workload sent", async () => {
  await withSetup({}, async ({ cp, w }) => {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const workloads = Array.from({ length: 40 }, (_, i) => 0.25 + i * 1.5);
    const total = workloads.reduce((s, x) => s + x, 0);
    // Spread over several report ticks, some requests overlapping.
    await burst(w, 1, workloads.length, (idx) => ({
      w: workloads[idx - 1],
      delay_ms: 10 + (idx % 4) * 15,
    }));
    await waitFor(
      () => Object.values(w.ledger.window()).every((v) => v === 0),
      3000,
      "counters settled",
    );
    // Two more heartbeats: nothing is counted again.
    const n = cp.statusReports.length;
    await waitFor(() => cp.statusReports.length >= n + 2, 3000, "heartbeats");
    assert.ok(
      cp.statusReports.filter((r) => statusOf(r).new_load > 0).length > 1,
      "the workload was spread over several reports",
    );
    assertClose(sumOf(cp.statusReports, "new_load"), total, "new_load");
    assertClose(sumOf(cp.statusReports, "cur_perf"), total, "cur_perf");
    assert.equal(sumOf(cp.statusReports, "rej_load"), 0);
    assert.equal(statusOf(cp.statusReports.at(-1)!).num_requests_recieved, 40);
  });
});

Deno.test("a 30-second autoscaler outage loses and duplicates nothing and does not slow requests", async () => {
  await withSetup({}, async ({ cp, w }) => {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    let idx = 0;
    let total = 0;
    const payload = () => {
      const workload = 1 + (idx % 7) * 0.5;
      total += workload;
      return { w: workload, delay_ms: 5 };
    };
    const baseline = await burst(w, idx + 1, 40, payload, 2);
    idx += 40;

    // The outage: both endpoints answer 503 for 30 s.
    cp.setStatusReply({ status: 503 });
    cp.setDeleteReply({ status: 503 });
    const down: [number, number] = [cp.statusReports.length, 0];
    const downDel: [number, number] = [cp.deleteReports.length, 0];
    const outageEnd = Date.now() + 30_000;
    const during: number[] = [];
    while (Date.now() < outageEnd) {
      during.push(...await burst(w, idx + 1, 10, payload, 2));
      idx += 10;
      await new Promise((r) => setTimeout(r, 100));
    }
    cp.setStatusReply(undefined);
    cp.setDeleteReply(undefined);
    down[1] = cp.statusReports.length;
    downDel[1] = cp.deleteReports.length;
    const sent = idx;

    assert.ok(down[1] - down[0] >= 3, "status kept being tried");
    assert.ok(downDel[1] - downDel[0] >= 3, "deletes kept being tried");
    const p99 = percentile(baseline, 99);
    const p99Down = percentile(during, 99);
    assert.ok(
      p99Down <= 3 * p99 + 20,
      `p99 ${p99Down.toFixed(1)} ms during the outage vs ${p99.toFixed(1)} ms`,
    );

    // After recovery: every workload and request_idx exactly once.
    const okStatus = () => accepted(cp.statusReports, [down]);
    const okDeletes = () => accepted(cp.deleteReports, [downDel]);
    await waitFor(
      () =>
        w.ledger.pendingFinished().length === 0 &&
        Object.values(w.ledger.window()).every((v) => v === 0),
      10_000,
      "backlog delivered after the outage",
    );
    assertClose(sumOf(okStatus(), "new_load"), total, "new_load");
    assertClose(sumOf(okStatus(), "cur_perf"), total, "cur_perf");
    const idxs = deleteItems(okDeletes()).map((d) => d.request_idx);
    assert.equal(idxs.length, sent, "one delete item per request");
    assert.deepEqual(
      idxs.sort((a, b) => a - b),
      Array.from({ length: sent }, (_, i) => i + 1),
    );
    for (const d of deleteItems(okDeletes())) {
      assert.equal(d.status, "Success");
    }
    const families = await (await fetch(`${w.url}/metrics`)).text();
    assert.match(
      families,
      /edgeworker_reports_total\{kind="status",result="failure"\} [1-9]/,
    );
  });
});

Deno.test("a slow autoscaler (5 s per answer) does not change request latency", async () => {
  await withSetup({}, async ({ cp, w }) => {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const payload = () => ({ w: 1, delay_ms: 10 });
    // Warm the connections up, then measure without and with the delay.
    await burst(w, 1, 20, payload);
    const fast = await burst(w, 21, 100, payload);
    cp.setDelayMs(5000);
    const n = cp.statusReports.length;
    const slow = await burst(w, 121, 100, payload);
    assert.ok(
      cp.statusReports.length > n,
      "a report was waiting on the slow autoscaler",
    );
    const p99 = percentile(fast, 99);
    const p99Slow = percentile(slow, 99);
    assert.ok(
      p99Slow <= 3 * p99 + 20,
      `p99 ${p99Slow.toFixed(1)} ms with a slow autoscaler vs ${
        p99.toFixed(1)
      } ms`,
    );
    // Answers already delayed still take their 5 s; shutdown waits for them.
    cp.setDelayMs(0);
  });
});

Deno.test("an autoscaler slower than the report timeout gets every request_idx and workload exactly once", async () => {
  await withSetup({
    timings: { ...FAST, reportTimeoutMs: 1000 },
  }, async ({ cp, w }) => {
    // Every report is processed on arrival and answered 1.2 s later, after
    // the worker stopped waiting (1 s): each try's delivery is unknown.
    cp.setDelayMs(1200);
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const workloads = Array.from({ length: 40 }, (_, i) => 0.5 + (i % 9));
    const total = workloads.reduce((s, x) => s + x, 0);
    await burst(w, 1, workloads.length, (idx) => ({
      w: workloads[idx - 1],
      delay_ms: 20 + (idx % 5) * 20,
    }));
    // Settled once every figure went out in some try (a failure to settle
    // shows in the assertions below).
    await waitFor(
      () =>
        w.ledger.pendingFinished().length === 0 &&
        Object.values(w.ledger.window()).every((v) => v === 0),
      10_000,
      "counters settled",
    ).catch(() => {});
    // Two more reports: nothing is sent again.
    const n = cp.statusReports.length;
    await waitFor(() => cp.statusReports.length >= n + 2, 5000, "reports");
    const seen = new Map<number, number>();
    const items = deleteItems(cp.deleteReports);
    console.log(
      `total ${total}; received ${cp.statusReports.length} status bodies: ` +
        `new_load ${sumOf(cp.statusReports, "new_load")}, ` +
        `cur_perf ${sumOf(cp.statusReports, "cur_perf")}; ` +
        `${cp.deleteReports.length} delete bodies, ${items.length} items`,
    );
    for (const d of items) {
      seen.set(d.request_idx, (seen.get(d.request_idx) ?? 0) + 1);
    }
    assert.deepEqual(
      [...seen].filter(([, c]) => c !== 1),
      [],
      "no request_idx in two delete bodies",
    );
    assert.deepEqual(
      [...seen.keys()].sort((a, b) => a - b),
      Array.from({ length: 40 }, (_, i) => i + 1),
    );
    // Every body the autoscaler processed counts: no over-count, and as
    // every try arrived, no under-count either.
    assertClose(sumOf(cp.statusReports, "new_load"), total, "new_load");
    assertClose(sumOf(cp.statusReports, "cur_perf"), total, "cur_perf");
    assert.equal(statusOf(cp.statusReports.at(-1)!).num_requests_recieved, 40);
    cp.setDelayMs(0);
  });
});
