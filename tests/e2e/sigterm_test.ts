/**
 * SIGTERM to a worker subprocess (`deno run -A main.ts run --config`) that
 * reports to a control-plane stand-in in this process: requests in flight
 * finish, new ones get 503 + Retry-After, a last status goes out, the exit
 * code is 0; past the drain time the streams left are cancelled and
 * reported as such.
 */
import assert from "node:assert/strict";
import {
  type ControlPlane,
  startControlPlane,
} from "../../dev/control_plane.ts";
import type { WorkerStatus } from "../../lib/autoscaler/wire.ts";
import { type DeleteItem, deleteItems, sumOf } from "../helpers/reporting.ts";
import { startUpstream, type UpstreamHandle } from "../helpers/upstream.ts";
import { envelope } from "../helpers/worker.ts";
import { spawnYamlWorker, waitReady } from "./_scenario.ts";
import { post, readAll, waitFor } from "../helpers/http.ts";
import { kill } from "../helpers/process.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

interface Subprocess {
  base: string;
  cp: ControlPlane;
  up: UpstreamHandle;
  child: Deno.ChildProcess;
  /** Resolves when the child exits, with all its output. */
  output: Promise<Deno.CommandOutput>;
}

/** Runs a YAML worker with one parallel `/stream` route in a subprocess. */
async function withSubprocessWorker(
  env: Record<string, string>,
  fn: (s: Subprocess) => Promise<void>,
): Promise<void> {
  const cp = await startControlPlane();
  const up = startUpstream();
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-sigterm-" });
  const { child, base } = await spawnYamlWorker(dir, ["run", "-A", MAIN], [
    `modelServerUrl: ${up.url}`,
    `handlers:`,
    `  - route: /stream`,
    `    allowParallelRequests: true`,
    `    maxQueueTime: null`,
    `    workload: { kind: field, path: w, default: 1 }`,
  ], {
    REPORT_ADDR: cp.url,
    CONTAINER_ID: "99",
    MASTER_TOKEN: "tok-99",
    ...env,
  });
  // Read both pipes from the start so a chatty child never blocks.
  const output = child.output();
  try {
    await waitReady(base);
    await fn({ base, cp, up, child, output });
  } finally {
    kill(child, "SIGKILL");
    await output.catch(() => {});
    await up.close();
    await cp.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const isShuttingDown = (b: unknown) =>
  (b as WorkerStatus).error_msg === "Worker shutting down";

Deno.test("SIGTERM: 10 streams in flight finish, new requests get 503 + Retry-After, a final status goes out, exit 0", async () => {
  await withSubprocessWorker({}, async ({ base, cp, up, child, output }) => {
    const CHUNKS = 15;
    const streams = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        post(
          base,
          "/stream",
          envelope(
            { w: i + 1, chunks: CHUNKS, gap_ms: 100 },
            { request_idx: i + 1, reqnum: i + 1 },
          ),
        )),
    );
    const bodies = streams.map(readAll);
    await waitFor(() => up.active === 10, 3000, "10 streams at the model");

    const killedAt = Date.now();
    child.kill("SIGTERM");
    // The worker says it is going away at once, not at the next heartbeat.
    const goingAway = await cp.waitFor("status", isShuttingDown, 2000);
    assert.ok(goingAway.at - killedAt < 1000);

    // Still draining (the streams run 1.5 s): a new request is turned away.
    const late = await post(
      base,
      "/stream",
      envelope({ w: 50, chunks: 2, gap_ms: 10 }, { request_idx: 11 }),
    );
    assert.equal(late.status, 503);
    assert.equal(late.headers.get("retry-after"), "5");
    assert.deepEqual(await late.json(), { error: "worker is shutting down" });
    assert.ok(up.active > 0, "the 503 came while streams were in flight");

    for (const [i, done] of (await Promise.all(bodies)).entries()) {
      assert.equal(streams[i].status, 200);
      assert.equal(done.error, undefined, `stream ${i + 1} broke off`);
      for (let c = 0; c < CHUNKS; c++) {
        assert.ok(done.text.includes(`data: {"i":${c}}`), `chunk ${c}`);
      }
      assert.ok(done.text.endsWith("data: [DONE]\n\n"));
    }

    const out = await output;
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.equal(up.bodies.length, 10, "the refused request never reached it");

    // The last status, sent after the drain: nothing working, going away.
    const last = cp.statusReports.at(-1)!;
    assert.ok(last.at > killedAt);
    const final = last.body as WorkerStatus;
    assert.equal(final.error_msg, "Worker shutting down");
    assert.equal(final.num_requests_working, 0);
    assert.deepEqual(final.working_request_idxs, []);
    assert.equal(final.cur_load, 0);
    assert.equal(sumOf(cp.statusReports, "new_load"), 55);
    assert.equal(sumOf(cp.statusReports, "cur_perf"), 55);
    assert.equal(sumOf(cp.statusReports, "rej_load"), 50);

    // Every request reported exactly once before the exit.
    const items = deleteItems(cp.deleteReports);
    const byIdx = new Map<number, DeleteItem>(
      items.map((d) => [d.request_idx, d]),
    );
    assert.equal(items.length, 11);
    assert.equal(byIdx.size, 11);
    for (let idx = 1; idx <= 10; idx++) {
      assert.equal(byIdx.get(idx)?.status, "Success", `request ${idx}`);
      assert.equal(byIdx.get(idx)?.success, true);
    }
    assert.equal(byIdx.get(11)?.status, "Rejected");
    assert.equal(byIdx.get(11)?.success, false);
  });
});

Deno.test("SIGTERM past the drain time: the endless stream is cancelled and reported so, exit 0", async () => {
  await withSubprocessWorker(
    { EDGEWORKER_DRAIN_SECONDS: "1" },
    async ({ base, cp, up, child, output }) => {
      const res = await post(
        base,
        "/stream",
        envelope({ w: 8, chunks: 1_000_000, gap_ms: 50 }, { request_idx: 1 }),
      );
      assert.equal(res.status, 200);
      const body = readAll(res);
      await waitFor(() => up.chunkTimes.length >= 2, 3000, "stream flowing");

      const killedAt = Date.now();
      child.kill("SIGTERM");
      const out = await output;
      const exitedAfter = Date.now() - killedAt;
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      assert.ok(exitedAfter >= 900, `exited ${exitedAfter} ms after SIGTERM`);
      assert.ok(exitedAfter < 5000, `exited ${exitedAfter} ms after SIGTERM`);
      assert.match(stderr, /Drain time over: cancelling 1 requests/);

      // The client saw a stream that never finished.
      const seen = await body;
      assert.ok(seen.text.includes('data: {"i":0}'));
      assert.ok(!seen.text.includes("[DONE]"));
      await waitFor(() => up.active === 0, 3000, "model stream closed");

      const items = deleteItems(cp.deleteReports);
      assert.equal(items.length, 1);
      assert.equal(items[0].request_idx, 1);
      assert.equal(items[0].status, "Cancelled");
      assert.equal(items[0].success, true);
      assert.ok(items[0].work_completed_at - items[0].work_started_at >= 0.9);
      const final = cp.statusReports.at(-1)!.body as WorkerStatus;
      assert.equal(final.error_msg, "Worker shutting down");
      assert.equal(final.num_requests_working, 0);
      // Received once; a cancel is not served work.
      assert.equal(sumOf(cp.statusReports, "cur_perf"), 0);
    },
  );
});
