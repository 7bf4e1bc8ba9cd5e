/**
 * `/delete_requests/` from a real worker: after a run of every outcome
 * (success, model 500, mid-stream error, client abort, budget 429, bad
 * signature 401), the control-plane stand-in holds each request_idx exactly
 * once, with Python's success flag and status string and ordered times.
 */
import assert from "node:assert/strict";
import {
  type DeleteBody,
  deleteItems,
  MIXED,
  runMixed,
  SLOW_MS,
  waitForDeletes,
  withMixedWorker,
} from "./helpers/reporting.ts";
import { generateKeys } from "./helpers/signing.ts";
import { waitFor } from "./helpers/http.ts";

const KEYS = await generateKeys();

Deno.test("delete_requests: every request_idx once, with Python's success flag, status and ordered times", async () => {
  await withMixedWorker(KEYS, {
    CONTAINER_ID: "777",
    MASTER_TOKEN: "mtoken-777",
  }, async ({ cp, w: worker }) => {
    const before = Date.now() / 1000;
    await runMixed(worker, KEYS);
    const after = Date.now() / 1000;
    await waitForDeletes(cp, MIXED.keys());
    // Nothing left to send, and nothing sent twice after a few more ticks.
    await waitFor(
      () => worker.ledger.pendingFinished().length === 0,
      3000,
      "deletes acknowledged",
    );
    const seen = cp.deleteReports.length;
    const statuses = cp.statusReports.length;
    await waitFor(
      () => cp.statusReports.length >= statuses + 2,
      3000,
      "two more heartbeats",
    );
    assert.equal(cp.deleteReports.length, seen, "no delete sent again");

    for (const r of cp.deleteReports) {
      const body = r.body as DeleteBody;
      assert.deepEqual(Object.keys(body), ["worker_id", "mtoken", "requests"]);
      assert.equal(body.worker_id, 777);
      assert.equal(body.mtoken, "mtoken-777");
      assert.ok(body.requests.length > 0, "no empty delete report");
    }
    const items = deleteItems(cp.deleteReports);
    assert.deepEqual(
      items.map((d) => d.request_idx).sort((a, b) => a - b),
      [...MIXED.keys()],
      "each request_idx exactly once",
    );
    for (const item of items) {
      const want = MIXED.get(item.request_idx)!;
      const what = `request ${item.request_idx} (${want.route})`;
      assert.deepEqual(Object.keys(item), [
        "request_idx",
        "success",
        "status",
        "entered_queue_at",
        "work_started_at",
        "work_completed_at",
      ]);
      assert.ok(Number.isInteger(item.request_idx));
      assert.equal(item.status, want.status, what);
      assert.equal(
        item.success,
        want.status === "Success" || want.status === "Cancelled",
        what,
      );
      for (
        const t of [
          item.entered_queue_at,
          item.work_started_at,
          item.work_completed_at,
        ]
      ) {
        assert.equal(typeof t, "number", what);
        assert.ok(t >= before - 0.01 && t <= after + 0.01, `${what}: ${t}`);
      }
      assert.ok(
        item.entered_queue_at <= item.work_started_at &&
          item.work_started_at <= item.work_completed_at,
        `${what}: times out of order ${JSON.stringify(item)}`,
      );
      if (want.status === "Rejected") {
        assert.equal(item.work_completed_at, item.entered_queue_at, what);
      }
    }
    // The slow request really took its time at the model server.
    const slow = items.find((d) => d.request_idx === 1)!;
    assert.ok(
      slow.work_completed_at - slow.work_started_at >= SLOW_MS / 1000 - 0.05,
    );
  });
});
