/**
 * The local observability endpoints of a real worker: `/metrics` (parsed
 * with `parse-prometheus-text-format`) against the ledger after a known mix
 * of requests, `/status` against the last `/worker_status/` report, and
 * `/ready` / `/health` through the lifecycle.
 */
import assert from "node:assert/strict";
import type { ControlPlane } from "../dev/control_plane.ts";
import type { WorkerStatus } from "../lib/autoscaler/wire.ts";
import { REJECT_REASONS } from "../lib/traffic/ledger.ts";
import {
  MIXED,
  MIXED_HANDLERS,
  MIXED_MAX_PERF,
  runMixed,
  type Running,
  statusOf,
  stopWorker,
  sumOf,
  waitForDeletes,
  withMixedWorker,
} from "./helpers/reporting.ts";
import { rawValue, scrape, valueOf } from "./helpers/metrics.ts";
import { generateKeys } from "./helpers/signing.ts";
import { startUpstream } from "./helpers/upstream.ts";
import { envelope, startWorker } from "./helpers/worker.ts";
import { post, waitFor } from "./helpers/http.ts";

const KEYS = await generateKeys();

async function getJson(
  w: Running,
  path: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${w.url}${path}`);
  return { status: res.status, body: await res.json() };
}

/**
 * `/status` once its `last_report` is the last body the control plane got,
 * less the `mtoken` (never served).
 */
async function statusMatchingLastReport(
  w: Running,
  cp: ControlPlane,
): Promise<{ status: Record<string, unknown>; report: WorkerStatus }> {
  let status: Record<string, unknown> = {};
  let report: WorkerStatus | undefined;
  await waitFor(
    async () => {
      status = (await getJson(w, "/status")).body;
      report = statusOf(cp.statusReports.at(-1)!);
      try {
        const { mtoken: _, ...shown } = report;
        assert.deepEqual(status.last_report, shown);
        return true;
      } catch {
        return false;
      }
    },
    3000,
    "/status last_report equal to the last worker_status",
  );
  return { status, report: report! };
}

/** The figures `/status` shares with `/worker_status/`. */
function assertSameFigures(
  status: Record<string, unknown>,
  report: WorkerStatus,
): void {
  assert.equal(status.error_msg, report.error_msg);
  assert.equal(status.loadtime, report.loadtime);
  assert.equal(status.max_perf, report.max_perf);
  assert.equal(status.in_flight, report.num_requests_working);
  assert.equal(status.queue_workload, report.cur_load);
}

Deno.test("/metrics matches the ledger after a known mix; /status has the last report's figures", async () => {
  await withMixedWorker(KEYS, {}, async ({ cp, w: worker }) => {
    await runMixed(worker, KEYS, {
      whileSlowInFlight: async () => {
        // Request 1 (20 units) is in flight; request 2 was refused.
        await cp.waitFor(
          "status",
          (b) => (b as WorkerStatus).working_request_idxs.includes(1),
          2000,
        );
        const { status, report } = await statusMatchingLastReport(worker, cp);
        assert.deepEqual(report.working_request_idxs, [1]);
        assert.equal(report.cur_load, 20);
        assertSameFigures(status, report);
        assert.equal(status.state, "ready");
        assert.equal(status.queued, 0);
        assert.equal(status.sessions, 0);
        const { families } = await scrape(worker.url);
        assert.equal(valueOf(families, "edgeworker_requests_in_flight"), 1);
        assert.equal(valueOf(families, "edgeworker_workload_in_flight"), 20);
      },
    });
    await waitForDeletes(cp, MIXED.keys());
    await waitFor(
      () => Object.values(worker.ledger.window()).every((v) => v === 0),
      3000,
      "status counters settled",
    );

    const { text, families } = await scrape(worker.url);
    // requests_total by route and outcome: what the mix did, and the ledger.
    const outcomeOf = (s: string) => s.toLowerCase();
    const routes = MIXED_HANDLERS.map((h) => h.route);
    const totals = worker.ledger.totals();
    for (const route of routes) {
      for (const outcome of ["success", "error", "cancelled", "rejected"]) {
        const expected = [...MIXED.values()].filter((m) =>
          m.route === route && outcomeOf(m.status) === outcome
        ).length;
        const fromLedger = [...totals].filter(([key]) => {
          const [r, o] = key.split("\u0000");
          return r === route &&
            (o.startsWith("rejected_") ? "rejected" : o) === outcome;
        }).reduce((s, [, n]) =>
          s + n, 0);
        const got = valueOf(families, "edgeworker_requests_total", {
          route,
          outcome,
        });
        assert.equal(got, expected, `${route} ${outcome}`);
        assert.equal(got, fromLedger, `${route} ${outcome} (ledger)`);
      }
    }
    const rejected = "edgeworker_requests_rejected_total";
    // Every reason has a series from the start, queue_timeout included.
    for (const reason of REJECT_REASONS) {
      const expected = [...MIXED.values()].filter((m) => m.reason === reason)
        .length;
      const fromLedger = [...totals].filter(([key]) =>
        key.endsWith(`\u0000rejected_${reason}`)
      ).reduce((s, [, n]) => s + n, 0);
      assert.equal(valueOf(families, rejected, { reason }), expected, reason);
      assert.equal(expected, fromLedger, `${reason} (ledger)`);
    }
    assert.equal(valueOf(families, rejected, { reason: "budget" }), 1);
    assert.equal(valueOf(families, rejected, { reason: "signature" }), 1);
    assert.equal(valueOf(families, "edgeworker_requests_in_flight"), 0);
    assert.equal(valueOf(families, "edgeworker_requests_queued"), 0);
    assert.equal(valueOf(families, "edgeworker_workload_in_flight"), 0);
    assert.equal(
      valueOf(families, "edgeworker_benchmark_throughput"),
      MIXED_MAX_PERF,
    );
    assert.equal(
      valueOf(families, "edgeworker_lifecycle_state", { state: "ready" }),
      1,
    );
    assert.equal(
      valueOf(families, "edgeworker_lifecycle_state", { state: "loading" }),
      0,
    );
    const reports = "edgeworker_reports_total";
    assert.ok(
      valueOf(families, reports, { kind: "status", result: "success" }),
    );
    assert.ok(
      valueOf(families, reports, { kind: "delete", result: "success" }),
    );
    assert.equal(
      valueOf(families, reports, { kind: "status", result: "failure" }),
      0,
    );

    // Histograms: one observation per admitted request (rejects have none).
    const dur = "edgeworker_request_duration_seconds";
    const ttfb = "edgeworker_time_to_first_byte_seconds";
    assert.equal(families.get(dur)?.type, "HISTOGRAM");
    for (const route of routes) {
      const admitted = [...MIXED.values()].filter((m) =>
        m.route === route && m.status !== "Rejected"
      ).length;
      assert.equal(rawValue(text, `${dur}_count{route="${route}"}`), admitted);
      assert.equal(
        rawValue(text, `${dur}_bucket{route="${route}",le="+Inf"}`),
        admitted,
      );
      // Every admitted request of the mix relayed at least one byte.
      assert.equal(rawValue(text, `${ttfb}_count{route="${route}"}`), admitted);
    }
    // Request 1 spent its second at the model server.
    assert.ok(rawValue(text, `${dur}_sum{route="/slow"}`) >= 0.95);
    assert.equal(rawValue(text, `${dur}_bucket{route="/slow",le="0.5"}`), 0);

    const { status, report } = await statusMatchingLastReport(worker, cp);
    assertSameFigures(status, report);
    assert.equal(status.state, "ready");
    assert.equal(report.max_perf, MIXED_MAX_PERF);
    assert.ok(report.loadtime > 0);
    assert.equal(status.in_flight, 0);
    assert.equal(status.queued, 0);
    assert.equal(status.queue_workload, 0);
    assert.equal(status.sessions, 0);
    assert.deepEqual(report.working_request_idxs, []);
    assert.equal(report.num_requests_recieved, 7, "admitted requests");
    // Served (a relayed model 500 included) and refused workload, reported once.
    assert.equal(sumOf(cp.statusReports, "cur_perf"), 20 + 1 + 2 + 3.5 + 4);
    assert.equal(sumOf(cp.statusReports, "rej_load"), 1 + 7);
  });
});

Deno.test("/ready and /health follow the lifecycle: loading, ready, error, draining", async () => {
  const up = startUpstream();
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-ready-" });
  const log = `${dir}/model.log`;
  await Deno.writeTextFile(log, "starting the model\n");
  const LOADED = "Application startup complete.";
  const FAILED = "RuntimeError: CUDA out of memory";
  let w: Running | undefined;
  try {
    w = await startWorker({
      modelServerUrl: up.url,
      modelLogFile: log,
      logActions: { onLoad: [LOADED], onError: [FAILED] },
      handlers: [{ route: "/slow", allowParallelRequests: true }],
    });
    const worker = w;
    const look = async () => ({
      ready: await getJson(worker, "/ready"),
      health: await getJson(worker, "/health"),
      status: (await getJson(worker, "/status")).body,
      metrics: (await scrape(worker.url)).families,
    });
    const assertState = async (
      state: string,
      ready: number,
      errorMsg = "",
    ) => {
      const seen = await look();
      const { loading_seconds, health, ...body } = seen.ready.body;
      assert.deepEqual({ status: seen.ready.status, body }, {
        status: ready,
        body: { state, error_msg: errorMsg },
      });
      // No health URL and no canary: only "alive" is checked.
      const levels = health as Record<string, { status: string } | string>;
      assert.equal(levels.alive, "ok");
      assert.deepEqual(
        [levels.engine, levels.generation].map((l) =>
          (l as { status: string }).status
        ),
        ["off", "off"],
      );
      // Until the first ready, /ready also says how long it has been loading.
      const loading = !worker.lifecycle.loadtime && state !== "draining";
      assert.equal(typeof loading_seconds, loading ? "number" : "object");
      assert.deepEqual(seen.health, {
        status: 200,
        body: { status: "alive", state },
      });
      assert.equal(seen.status.state, state);
      assert.equal(seen.status.error_msg, errorMsg);
      assert.equal(
        valueOf(seen.metrics, "edgeworker_lifecycle_state", { state }),
        1,
      );
    };

    assert.equal(worker.lifecycle.state, "loading");
    await assertState("loading", 503);

    await Deno.writeTextFile(log, `INFO ${LOADED}\n`, { append: true });
    await waitFor(() => worker.lifecycle.ready, 3000, "ready");
    await assertState("ready", 200);

    await Deno.writeTextFile(log, `${FAILED} (tried 2 GiB)\n`, {
      append: true,
    });
    await waitFor(() => worker.lifecycle.state === "error", 3000, "error");
    await assertState("error", 503, `${FAILED} (tried 2 GiB)`);

    // Draining: a request in flight keeps the listener open meanwhile.
    const slow = post(worker.url, "/slow", envelope({ delay_ms: 800 }));
    await waitFor(() => worker.ledger.inFlightCount === 1, 3000, "in flight");
    const stopping = worker.shutdown("test");
    await assertState("draining", 503, `${FAILED} (tried 2 GiB)`);
    const res = await slow;
    assert.equal(res.status, 200);
    await res.body?.cancel();
    await stopping;
  } finally {
    await stopWorker(w);
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});
