/**
 * Clients cannot poison the figures the autoscaler and the 429 rule use:
 * huge workloads are capped so sums stay finite, and the live throughput
 * is bounded by the benchmark's evidence.
 */
import assert from "node:assert/strict";
import { Capacity, LIVE_OVER_BENCHMARK_MAX } from "../lib/traffic/capacity.ts";
import { Ledger } from "../lib/traffic/ledger.ts";
import { Admission } from "../lib/traffic/ticket.ts";
import { MAX_WORKLOAD } from "../lib/traffic/workload.ts";
import {
  statusOf,
  stopWorker,
  sumOf,
  withReportingWorker,
} from "./helpers/reporting.ts";
import { startUpstream } from "./helpers/upstream.ts";
import { startWorker } from "./helpers/worker.ts";
import { post, waitFor } from "./helpers/http.ts";

/** An envelope whose payload is raw JSON text (numbers as the client wrote them). */
function rawEnvelope(payloadJson: string, idx: number): string {
  return `{"auth_data":{"cost":100,"endpoint":"t","reqnum":${idx},"request_idx":${idx},"signature":"x","url":"http://127.0.0.1"},"payload":${payloadJson}}`;
}

/** Posts two `/echo` requests of `max_tokens` 1.7e308, expecting `status`. */
async function postHuge(base: string, status: number): Promise<void> {
  for (let i = 1; i <= 2; i++) {
    const res = await post(
      base,
      "/echo",
      rawEnvelope('{"max_tokens":1.7e308}', i),
    );
    assert.equal(res.status, status);
    await res.body?.cancel();
  }
}

Deno.test("max_tokens 1.7e308 twice leaves new_load, cur_perf and the load finite and moving", async () => {
  await withReportingWorker({
    handlers: [{
      route: "/echo",
      allowParallelRequests: true,
      workload: { kind: "field", path: "max_tokens", default: 16 },
    }],
  }, async ({ cp, w }) => {
    const worker = w;
    await waitFor(() => worker.lifecycle.ready, 3000, "ready");
    await postHuge(w.url, 200);
    const res = await post(w.url, "/echo", rawEnvelope('{"max_tokens":10}', 3));
    await res.body?.cancel();
    await waitFor(
      () => Object.values(worker.ledger.window()).every((v) => v === 0),
      3000,
      "reported",
    );
    const reports = cp.statusReports;
    for (const r of reports) {
      const s = statusOf(r);
      for (const k of ["new_load", "cur_perf", "cur_load", "rej_load"]) {
        assert.ok(
          Number.isFinite(s[k as "new_load"]),
          `${k} = ${s[k as "new_load"]}`,
        );
      }
    }
    assert.equal(sumOf(reports, "new_load"), 2 * MAX_WORKLOAD + 10);
    assert.equal(sumOf(reports, "cur_perf"), 2 * MAX_WORKLOAD + 10);
    assert.equal(worker.ledger.currentLoad, 0);
  });
});

Deno.test("two rejected requests with cost 1.7e308 keep rej_load finite", async () => {
  await withReportingWorker({
    handlers: [{
      route: "/echo",
      workload: { kind: "field", path: "max_tokens" },
    }],
    env: { UNSECURED: "false" },
  }, async ({ cp, w }) => {
    const worker = w;
    // A signature that is not base64: refused 401 and counted in rej_load.
    await postHuge(w.url, 401);
    await waitFor(
      () => worker.ledger.window().rejected === 0,
      3000,
      "reported",
    );
    assert.equal(sumOf(cp.statusReports, "rej_load"), 2 * MAX_WORKLOAD);
  });
});

/** A ledger followed by a capacity, and `n` requests served at once through tickets. */
async function serveAtOnce(
  n: number,
  workload: number,
  options: { benchmark?: number; clockStepsBack?: boolean } = {},
) {
  let wall = 1_000_000;
  const ledger = new Ledger({ now: () => wall });
  const capacity = new Capacity();
  capacity.follow(ledger);
  capacity.benchmark = options.benchmark ?? 0;
  const admission = new Admission({ ledger });
  const limits = {
    maxQueueTime: null,
    firstByte: null,
    idle: null,
    total: null,
  };
  const ended: boolean[] = [];
  for (let i = 0; i < n; i++) {
    const t = admission.enter(
      { requestIdx: i, reqnum: i, route: "/r", workload },
      { queue: null, limits },
      new AbortController().signal,
    );
    t.sent();
    if (options.clockStepsBack) wall -= 60_000; // NTP steps the clock back mid-request
    ended.push(t.end("success", 200));
  }
  await admission.close();
  return { ledger, capacity, admission, ended };
}

Deno.test("quick answers claiming huge workloads cannot lift the live throughput past the evidence", async () => {
  const { capacity } = await serveAtOnce(25, 1e12, { benchmark: 100 });
  assert.ok(capacity.live !== undefined, "a live estimate exists");
  assert.equal(capacity.live, 100 * LIVE_OVER_BENCHMARK_MAX);
  assert.equal(capacity.forQueueBudget(), 100 * LIVE_OVER_BENCHMARK_MAX);
});

Deno.test("a wall clock that steps back does not break the live estimate or the release", async () => {
  const { ledger, admission, ended } = await serveAtOnce(3, 10, {
    clockStepsBack: true,
  });
  assert.deepEqual(ended, [true, true, true]);
  assert.equal(ledger.inFlightCount, 0);
  assert.equal(admission.openCount, 0);
});

Deno.test("a session with cost Infinity and its 1e308 requests leave the 429 rule working for everyone else", async () => {
  const up = startUpstream();
  const dir = await Deno.makeTempDir();
  const cache = `${dir}/.has_benchmark`;
  await Deno.writeTextFile(cache, "100.0");
  let w: Awaited<ReturnType<typeof startWorker>> | undefined;
  try {
    w = await startWorker({
      modelServerUrl: up.url,
      handlers: [{
        route: "/slow",
        allowParallelRequests: true,
        maxQueueTime: 30,
        workload: { kind: "field", path: "max_tokens", default: 16 },
      }],
    }, { EDGEWORKER_BENCHMARK_FILE: cache });
    const worker = w;
    await waitFor(() => worker.lifecycle.ready, 3000, "ready");
    const created = await post(
      w.url,
      "/session/create",
      `{"auth_data":{"cost":"Infinity","endpoint":"t","reqnum":1,"request_idx":1,"signature":"x","url":"http://127.0.0.1"},"payload":{"lifetime":30}}`,
    );
    assert.equal(created.status, 201);
    const { session_id } = await created.json();
    assert.ok(Number.isFinite(w.ledger.currentLoad), "cur_load finite");
    for (let i = 2; i <= 3; i++) {
      const res = await post(
        w.url,
        "/slow",
        `{"auth_data":{"cost":"Infinity","endpoint":"t","reqnum":1,"request_idx":1,"signature":"x","url":"http://127.0.0.1"},"session_id":"${session_id}","payload":{"max_tokens":1e308,"delay_ms":1}}`,
      );
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    // Another client's request of 100 units: 1 s of queue at 100/s, admitted.
    const other = await post(
      w.url,
      "/slow",
      rawEnvelope('{"max_tokens":100,"delay_ms":1}', 9),
    );
    assert.equal(other.status, 200, await other.text());
    assert.ok(Number.isFinite(w.ledger.queueWorkload));
  } finally {
    await stopWorker(w);
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});
