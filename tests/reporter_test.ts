import assert from "node:assert/strict";
import type { ReportIdentity } from "../lib/config/env.ts";
import { Ledger, type RequestInfo } from "../lib/traffic/ledger.ts";
import { Reporter, type ReporterOptions } from "../lib/autoscaler/reporter.ts";
import {
  type ControlPlane,
  type Recorded,
  startControlPlane,
} from "../dev/control_plane.ts";
import {
  buildWorkerStatus,
  deleteAddresses,
  encodeDeleteRequests,
  encodeLaunchFailure,
  encodeWorkerStatus,
  post,
  runLaunchFailureBeacon,
} from "../lib/autoscaler/wire.ts";
import { controlPlaneKeys } from "./helpers/dev.ts";
import type { DeleteItem } from "./helpers/reporting.ts";
import { waitFor } from "./helpers/http.ts";

const IDENTITY: ReportIdentity = {
  id: 4242,
  mtoken: "master-token",
  version: "1.1.0",
  url: "https://10.0.0.1:45000",
};

/** Every `/worker_status/` key and its JSON type ("float" has a `.`). */
const STATUS_TYPES: Record<string, "int" | "float" | "string" | "int[]"> = {
  id: "int",
  mtoken: "string",
  version: "string",
  loadtime: "float",
  cur_load: "float",
  rej_load: "float",
  new_load: "float",
  error_msg: "string",
  max_perf: "float",
  cur_perf: "float",
  cur_capacity: "int",
  max_capacity: "int",
  num_requests_working: "int",
  num_requests_recieved: "int",
  additional_disk_usage: "float",
  working_request_idxs: "int[]",
  url: "string",
};

/** Checks the exact key set and, from the raw text, int vs float. */
function assertStatusShape(raw: string): Record<string, unknown> {
  const body = JSON.parse(raw) as Record<string, unknown>;
  assert.deepEqual(Object.keys(body).sort(), Object.keys(STATUS_TYPES).sort());
  for (const [key, type] of Object.entries(STATUS_TYPES)) {
    const v = body[key];
    const literal = new RegExp(`"${key}":(-?[0-9.eE+-]+)`).exec(raw)?.[1];
    if (type === "string") assert.equal(typeof v, "string", key);
    else if (type === "int[]") {
      assert.ok(Array.isArray(v), key);
      for (const x of v as unknown[]) assert.ok(Number.isInteger(x), key);
    } else {
      assert.equal(typeof v, "number", key);
      assert.ok(literal, key);
      if (type === "int") assert.match(literal, /^-?\d+$/, key);
      else assert.match(literal, /[.eE]/, `${key} is written as a float`);
    }
  }
  return body;
}

const info = (
  idx: number,
  workload: number,
  extra: Partial<RequestInfo> = {},
): RequestInfo => ({
  requestIdx: idx,
  reqnum: idx,
  route: "/v1/completions",
  workload,
  ...extra,
});

Deno.test("buildWorkerStatus: exact fields, types and figures", () => {
  const ledger = new Ledger();
  const a = ledger.open(info(11, 100));
  ledger.start(a);
  ledger.open(info(12, 50));
  // A session and a request inside it: the session counts, its request not.
  ledger.open(info(13, 300, { sessionId: "s1", kind: "session" }));
  ledger.open(info(14, 7, { sessionId: "s1" }));
  const c = ledger.open(info(15, 30));
  ledger.finish(c, "cancelled", 499);
  const d = ledger.open(info(16, 20));
  ledger.finish(d, "success", 200);
  ledger.reject(info(17, 40), "budget", 429);

  const status = buildWorkerStatus({
    identity: IDENTITY,
    ledger,
    window: ledger.window(),
    loadtime: 12.5,
    errorMsg: "",
    maxPerf: 250,
    additionalDiskUsage: 0,
  });
  const body = assertStatusShape(encodeWorkerStatus(status));
  assert.deepEqual(body, {
    id: 4242,
    mtoken: "master-token",
    version: "1.1.0",
    loadtime: 12.5,
    cur_load: 100 + 50 + 300,
    rej_load: 40,
    new_load: 100 + 50 + 300 + 7 + 30 + 20 - 30,
    error_msg: "",
    max_perf: 250,
    cur_perf: 20,
    cur_capacity: 0,
    max_capacity: 0,
    num_requests_working: 3,
    num_requests_recieved: 4, // the ledger counts neither sessions nor their requests
    additional_disk_usage: 0,
    working_request_idxs: [11, 12, 13],
    url: "https://10.0.0.1:45000",
  });
  assert.match(encodeWorkerStatus(status), /"additional_disk_usage":0\.0,/);
  assert.match(encodeWorkerStatus(status), /"cur_capacity":0,/);
});

Deno.test("buildWorkerStatus: new_load floors at 0, bad numbers become 0", () => {
  const status = buildWorkerStatus({
    identity: { ...IDENTITY, version: "" },
    ledger: { currentLoad: NaN, inFlight: [], receivedCount: 0 },
    window: { received: 10, served: 0, cancelled: 30, errored: 0, rejected: 0 },
    loadtime: Infinity,
    errorMsg: "CUDA out of memory",
    maxPerf: NaN,
    additionalDiskUsage: -1.5,
  });
  assert.equal(status.new_load, 0);
  assert.equal(status.cur_load, 0);
  assert.equal(status.loadtime, 0);
  assert.equal(status.max_perf, 0);
  assert.equal(status.additional_disk_usage, -1.5);
  assert.equal(status.version, "1.1.0");
  assert.equal(status.error_msg, "CUDA out of memory");
  assertStatusShape(encodeWorkerStatus(status));
});

Deno.test("worker_status floats are written as Python's json.dumps writes them", () => {
  const status = buildWorkerStatus({
    identity: IDENTITY,
    ledger: { currentLoad: 1e-7, inFlight: [], receivedCount: 0 },
    window: { received: 0, served: 0, cancelled: 0, errored: 0, rejected: 0 },
    loadtime: 1700000000.123,
    errorMsg: "",
    maxPerf: 1e16,
    additionalDiskUsage: 100,
  });
  const text = encodeWorkerStatus({ ...status, cur_perf: NaN });
  // What Python prints for json.dumps of the same floats.
  assert.match(text, /"max_perf":1e\+16,/);
  assert.match(text, /"cur_load":1e-07,/);
  assert.match(text, /"loadtime":1700000000\.123,/);
  assert.match(text, /"additional_disk_usage":100\.0,/);
  assert.match(text, /"cur_perf":0\.0,/);
  assert.match(text, /"rej_load":0\.0,/);
  assertStatusShape(text);
});

Deno.test("delete_requests body: statuses, success flags, timestamps", () => {
  let clock = 1_700_000_000_000;
  const ledger = new Ledger({ now: () => clock });
  const outcomes = ["success", "error", "cancelled"] as const;
  outcomes.forEach((o, i) => {
    const r = ledger.open(info(i + 1, 10));
    clock += 100;
    ledger.start(r);
    clock += 100;
    ledger.finish(r, o, 200);
  });
  ledger.reject(info(4, 10), "signature", 401);
  const body = JSON.parse(
    encodeDeleteRequests(IDENTITY, ledger.pendingFinished()),
  );
  assert.deepEqual(Object.keys(body), ["worker_id", "mtoken", "requests"]);
  assert.equal(body.worker_id, 4242);
  assert.equal(body.mtoken, "master-token");
  assert.deepEqual(
    body.requests.map((
      r: Record<string, unknown>,
    ) => [r.request_idx, r.success, r.status]),
    [[1, true, "Success"], [2, false, "Error"], [3, true, "Cancelled"], [
      4,
      false,
      "Rejected",
    ]],
  );
  for (const r of body.requests) {
    assert.deepEqual(Object.keys(r).sort(), [
      "entered_queue_at",
      "request_idx",
      "status",
      "success",
      "work_completed_at",
      "work_started_at",
    ]);
    assert.ok(r.entered_queue_at <= r.work_started_at);
    assert.ok(r.work_started_at <= r.work_completed_at);
    assert.ok(
      r.entered_queue_at > 1.6e9 && r.entered_queue_at < 2e9,
      "unix seconds",
    );
  }
  const r0 = body.requests[0];
  assert.ok(Math.abs(r0.work_completed_at - r0.entered_queue_at - 0.2) < 1e-6);
});

Deno.test("launch-failure body has the five keys of report_error_and_exit", () => {
  assert.deepEqual(JSON.parse(encodeLaunchFailure(IDENTITY, "port taken")), {
    id: 4242,
    mtoken: "master-token",
    version: "1.1.0",
    error_msg: "port taken",
    url: "https://10.0.0.1:45000",
  });
});

Deno.test("deletes skip https://cloud.vast.ai/api/v0 as Python does", () => {
  assert.deepEqual(
    deleteAddresses([
      " https://cloud.vast.ai/api/v0/",
      "https://run.vast.ai/",
      "",
    ]),
    ["https://run.vast.ai"],
  );
});

// ---------------------------------------------------------------------------
// Against the control-plane stand-in.

type Body = Record<string, unknown>;

let keyPair: Promise<CryptoKeyPair> | undefined;

/** A control plane closed by `await using` (one RSA key for the file). */
async function controlPlane(): Promise<ControlPlane & AsyncDisposable> {
  keyPair ??= controlPlaneKeys();
  const cp = await startControlPlane({ keyPair: await keyPair });
  return Object.assign(cp, { [Symbol.asyncDispose]: () => cp.close() });
}

const STATE = { loadtime: 3.5, errorMsg: "", maxPerf: 200 };

function makeReporter(
  cp: ControlPlane,
  ledger: Ledger,
  options: Partial<ReporterOptions> = {},
): Reporter {
  return new Reporter({
    reportAddrs: [cp.url],
    ledger,
    identity: IDENTITY,
    state: () => STATE,
    diskUsageGb: () => 10,
    tickMs: 50,
    heartbeatMs: 300,
    retryDelayMs: 20,
    timeoutMs: 2000,
    ...options,
  });
}

/**
 * A control plane, a ledger and a reporter to it (`options` over
 * {@linkcode makeReporter}'s); disposing closes the reporter (again, if a
 * test closed it to look at what arrived), then the control plane.
 */
async function reporterRig(
  options: Partial<ReporterOptions> = {},
): Promise<
  { cp: ControlPlane; ledger: Ledger; reporter: Reporter } & AsyncDisposable
> {
  const cp = await controlPlane();
  const ledger = new Ledger();
  const reporter = makeReporter(cp, ledger, options);
  return {
    cp,
    ledger,
    reporter,
    [Symbol.asyncDispose]: async () => {
      await reporter.close();
      await cp.close();
    },
  };
}

const delay = (ms: number): Promise<void> =>
  new Promise((r) => setTimeout(r, ms));
const sum = (bodies: Body[], key: string): number =>
  bodies.reduce((s, b) => s + (b[key] as number), 0);
const bodies = (recs: Recorded[]): Body[] => recs.map((r) => r.body as Body);

/** Checks the JSON types of a status as the autoscaler parses it. */
function assertStatusJson(body: Body): void {
  assert.deepEqual(Object.keys(body).sort(), Object.keys(STATUS_TYPES).sort());
  for (const [key, type] of Object.entries(STATUS_TYPES)) {
    const v = body[key];
    if (type === "string") assert.equal(typeof v, "string", key);
    else if (type === "int[]") assert.ok(Array.isArray(v), key);
    else if (type === "int") assert.ok(Number.isInteger(v), key);
    else assert.equal(typeof v, "number", key);
  }
}

Deno.test("a report goes out at start and within 1.5 s of a ledger change", async () => {
  // Production cadence: 1 s tick, heartbeat far away.
  await using rig = await reporterRig({
    tickMs: 1000,
    heartbeatMs: 60_000,
  });
  const { cp, ledger, reporter } = rig;
  reporter.start();
  const first = await cp.waitFor("status", undefined, 2000);
  assertStatusJson(first.body as Body);
  assert.deepEqual(
    { ...(first.body as Body), mtoken: "x" },
    {
      id: 4242,
      mtoken: "x",
      version: "1.1.0",
      loadtime: 3.5,
      cur_load: 0,
      rej_load: 0,
      new_load: 0,
      error_msg: "",
      max_perf: 200,
      cur_perf: 0,
      cur_capacity: 0,
      max_capacity: 0,
      num_requests_working: 0,
      num_requests_recieved: 0,
      additional_disk_usage: 0,
      working_request_idxs: [],
      url: "https://10.0.0.1:45000",
    },
  );
  await delay(300);
  const t0 = Date.now();
  const rec = ledger.open(info(77, 100));
  ledger.start(rec);
  const next = await cp.waitFor(
    "status",
    (b) => (b as Body).new_load === 100,
    2000,
  );
  assert.ok(next.at - t0 < 1500, `took ${next.at - t0} ms`);
  assert.deepEqual((next.body as Body).working_request_idxs, [77]);
  assert.equal((next.body as Body).cur_load, 100);
  assert.equal(reporter.lastStatus?.new_load, 100);
});

Deno.test("notify() sends at once, not on the next tick", async () => {
  let errorMsg = "";
  await using rig = await reporterRig({
    tickMs: 10_000,
    heartbeatMs: 60_000,
    state: () => ({ ...STATE, errorMsg }),
  });
  const { cp, reporter } = rig;
  reporter.start();
  await cp.waitFor("status");
  await delay(100);
  errorMsg = "model failed to load";
  const t0 = Date.now();
  reporter.notify();
  const rec = await cp.waitFor(
    "status",
    (b) => (b as Body).error_msg !== "",
    1000,
  );
  assert.ok(rec.at - t0 < 300, `took ${rec.at - t0} ms`);
  assert.equal(cp.statusReports.length, 2);
});

Deno.test("idle: a heartbeat every heartbeatMs", async () => {
  await using rig = await reporterRig();
  const { cp, reporter } = rig;
  reporter.start();
  await delay(1000);
  await reporter.close();
  const n = cp.statusReports.length;
  assert.ok(n >= 3 && n <= 5, `${n} reports in 1 s with a 300 ms heartbeat`);
  for (let i = 1; i < n; i++) {
    const gap = cp.statusReports[i].at - cp.statusReports[i - 1].at;
    assert.ok(gap >= 250, `gap ${gap} ms`);
  }
});

Deno.test("counters are summed correctly across several reports", async () => {
  await using rig = await reporterRig();
  const { cp, ledger, reporter } = rig;
  let received = 0, served = 0, cancelled = 0, rejected = 0;
  reporter.start();
  for (let i = 1; i <= 30; i++) {
    const w = 10 + i;
    if (i % 7 === 0) {
      ledger.reject(info(i, w), "budget", 429);
      rejected += w;
    } else {
      const outcome = i % 5 === 0
        ? "cancelled"
        : i % 6 === 0
        ? "error"
        : "success";
      const r = ledger.open(info(i, w));
      received += w;
      ledger.start(r);
      // A cancel lands in the window of its arrival (see the next test).
      if (outcome !== "cancelled") await delay(15);
      ledger.finish(r, outcome, 200);
      if (outcome === "success") served += w;
      if (outcome === "cancelled") cancelled += w;
    }
  }
  await reporter.flush();
  await reporter.close();
  const all = bodies(cp.statusReports);
  assert.ok(all.length >= 4, `${all.length} reports`);
  assert.equal(sum(all, "new_load"), received - cancelled);
  assert.equal(sum(all, "cur_perf"), served);
  assert.equal(sum(all, "rej_load"), rejected);
  assert.deepEqual(ledger.window(), {
    received: 0,
    served: 0,
    cancelled: 0,
    errored: 0,
    rejected: 0,
  });
  const last = all.at(-1)!;
  assert.equal(last.num_requests_recieved, ledger.receivedCount);
  assert.equal(last.num_requests_working, 0);
  const idxs = bodies(cp.deleteReports).flatMap((b) =>
    (b.requests as DeleteItem[]).map((r) => r.request_idx)
  );
  assert.deepEqual(
    idxs.sort((a, b) => a - b),
    Array.from({ length: 30 }, (_, i) => i + 1),
  );
  assert.equal(reporter.stats.status.failures, 0);
  assert.equal(reporter.stats.status.successes, all.length);
});

Deno.test("an outage loses nothing and counts nothing twice", async () => {
  let disk = 100;
  await using rig = await reporterRig({
    diskUsageGb: () => disk += 0.25,
    attempts: 2,
  });
  const { cp, ledger, reporter } = rig;
  const expected = new Map<number, boolean>();
  let received = 0, served = 0, cancelled = 0;
  const traffic = async (from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) {
      const w = i;
      if (i % 9 === 0) {
        ledger.reject(info(i, w), "signature", 401);
        expected.set(i, false);
        continue;
      }
      const outcome = i % 4 === 0
        ? "cancelled"
        : i % 5 === 0
        ? "error"
        : "success";
      const r = ledger.open(info(i, w));
      received += w;
      // A cancel lands in the window of its arrival (see the next test).
      if (outcome !== "cancelled") await delay(5);
      ledger.start(r);
      if (outcome !== "cancelled") await delay(5);
      ledger.finish(r, outcome, outcome === "success" ? 200 : 500);
      expected.set(i, outcome !== "error");
      if (outcome === "success") served += w;
      if (outcome === "cancelled") cancelled += w;
    }
  };
  const firstDisk = 100.25;
  let rejectedStatus: [number, number] = [0, 0];
  let rejectedDelete: [number, number] = [0, 0];
  reporter.start();
  await traffic(1, 20);
  await delay(150);
  // Outage: both endpoints answer 503.
  rejectedStatus = [cp.statusReports.length, 0];
  rejectedDelete = [cp.deleteReports.length, 0];
  cp.setStatusReply({ status: 503 });
  cp.setDeleteReply({ status: 503 });
  await traffic(20, 50);
  await waitFor(
    () => reporter.stats.status.failures >= 3,
    5000,
    "failed rounds",
  );
  rejectedStatus[1] = cp.statusReports.length;
  rejectedDelete[1] = cp.deleteReports.length;
  cp.setStatusReply(undefined);
  cp.setDeleteReply(undefined);
  await traffic(50, 70);
  await reporter.flush();
  await reporter.close();
  const accepted = (recs: Recorded[], [a, b]: [number, number]): Body[] =>
    bodies(recs.filter((_, i) => i < a || i >= b));
  assert.ok(
    rejectedStatus[1] > rejectedStatus[0],
    "some status reports were refused",
  );
  assert.ok(
    rejectedDelete[1] > rejectedDelete[0],
    "some delete reports were refused",
  );

  const statuses = accepted(cp.statusReports, rejectedStatus);
  assert.equal(sum(statuses, "new_load"), received - cancelled);
  assert.equal(sum(statuses, "cur_perf"), served);
  // Disk delta telescopes: last measured minus the baseline, nothing lost.
  assert.ok(
    Math.abs(sum(statuses, "additional_disk_usage") - (disk - firstDisk)) <
      1e-9,
  );

  const seen = new Map<number, number>();
  for (const b of accepted(cp.deleteReports, rejectedDelete)) {
    assert.equal(b.worker_id, 4242);
    for (const r of b.requests as DeleteItem[]) {
      seen.set(r.request_idx, (seen.get(r.request_idx) ?? 0) + 1);
      assert.equal(
        r.success,
        expected.get(r.request_idx),
        `success of ${r.request_idx}`,
      );
      assert.ok(r.entered_queue_at <= r.work_started_at);
      assert.ok(r.work_started_at <= r.work_completed_at);
    }
  }
  assert.deepEqual([...seen.keys()].sort((a, b) => a - b), [
    ...expected.keys(),
  ]);
  assert.ok(
    [...seen.values()].every((n) => n === 1),
    "each request_idx exactly once",
  );
  assert.equal(ledger.pendingFinished().length, 0);
  assert.ok(reporter.stats.delete.failures >= 1);
  assert.equal(reporter.stats.status.lastError, "HTTP 503");
});

Deno.test("one status in flight at a time; the request path is never held", async () => {
  await using rig = await reporterRig({ heartbeatMs: 60_000 });
  const { cp, ledger, reporter } = rig;
  reporter.start();
  await waitFor(() => reporter.stats.status.successes === 1, 5000);
  cp.setDelayMs(150);
  const t0 = performance.now();
  for (let i = 0; i < 2000; i++) {
    const r = ledger.open(info(i, 1));
    ledger.start(r);
    ledger.finish(r, "success", 200);
    if (i % 200 === 0) reporter.notify();
  }
  assert.ok(
    performance.now() - t0 < 200,
    "ledger work is not slowed by reports",
  );
  await delay(700);
  await reporter.close();
  const at = cp.statusReports.map((r) => r.at);
  // The first, one started by the burst, one more for what came after it.
  assert.equal(at.length, 3);
  for (let i = 2; i < at.length; i++) {
    assert.ok(
      at[i] - at[i - 1] >= 140,
      `overlapping reports: gap ${at[i] - at[i - 1]} ms`,
    );
  }
});

Deno.test("flush sends a final status and every pending delete; close aborts", async () => {
  await using rig = await reporterRig({
    tickMs: 60_000,
    heartbeatMs: 60_000,
    deleteBatchSize: 4,
  });
  const { cp, ledger, reporter } = rig;
  reporter.start();
  await cp.waitFor("status");
  for (let i = 1; i <= 10; i++) {
    ledger.finish(ledger.open(info(i, 5)), "success", 200);
  }
  await reporter.flush();
  assert.equal(cp.statusReports.length, 2);
  assert.equal((cp.statusReports[1].body as Body).cur_perf, 50);
  assert.deepEqual(
    bodies(cp.deleteReports).map((b) => (b.requests as DeleteItem[]).length),
    [4, 4, 2],
  );
  assert.equal(ledger.pendingFinished().length, 0);
  // A report stuck on a slow autoscaler does not hold close().
  cp.setDelayMs(5000);
  reporter.notify();
  await waitFor(() => cp.statusReports.length === 3, 2000, "stuck report");
  const t0 = Date.now();
  await reporter.close();
  assert.ok(Date.now() - t0 < 1000, "close aborts the report in flight");
  assert.equal(
    ledger.window().served,
    0,
    "nothing settled by an aborted report",
  );
});

Deno.test("addresses are tried in order, each `attempts` times", async () => {
  await using cp = await controlPlane();
  await using down = await controlPlane();
  down.setStatusReply({ status: 500 });
  const reporter = makeReporter(cp, new Ledger(), {
    reportAddrs: [down.url + "/", cp.url],
    attempts: 3,
    heartbeatMs: 60_000,
  });
  let first = reporter.stats.status;
  try {
    reporter.start();
    await waitFor(() => {
      if (reporter.stats.status.successes !== 1) return false;
      first = { ...reporter.stats.status };
      return true;
    }, 5000);
  } finally {
    await reporter.close();
  }
  // Counted up to the first accepted report from the servers' own records:
  // the next round's first try may begin before the poll sees the success,
  // so the attempt counter of the snapshot can hold one more.
  // Timestamps are in ms and both servers are local: order within one
  // millisecond is not known, so count rounds. Each round is 3 refused
  // tries at the first address, then the second (a round may be under way).
  const accepted = cp.statusReports[0].at;
  const rounds = cp.statusReports.length;
  const refused = down.statusReports.length;
  assert.ok(
    down.statusReports.slice(0, 3).every((r) => r.at <= accepted),
    "the first address was tried first",
  );
  assert.ok(
    refused >= 3 * rounds && refused < 3 * rounds + 3,
    `${refused} tries at the first address for ${rounds} accepted rounds`,
  );
  const { attempts, ...stats } = first;
  assert.ok(attempts === 4 || attempts === 5, `attempts ${attempts}`);
  assert.deepEqual(
    { ...stats, lastSuccessAt: 0 },
    {
      successes: 1,
      failures: 0,
      unconfirmed: 0,
      lastSuccessAt: 0,
      lastError: "HTTP 500",
    },
  );
});

Deno.test("launch-failure beacon keeps reporting until stopped", async () => {
  await using cp = await controlPlane();
  await using cp2 = await controlPlane();
  const stop = new AbortController();
  const beacon = runLaunchFailureBeacon({
    reportAddrs: [cp.url, cp2.url],
    identity: IDENTITY,
    errorMsg: "TLS key /etc/instance.key not readable",
    intervalMs: 50,
    signal: stop.signal,
  });
  await waitFor(
    () => cp.statusReports.length >= 3 && cp2.statusReports.length >= 3,
    5000,
  );
  stop.abort();
  await beacon;
  const n = cp.statusReports.length;
  await delay(120);
  assert.equal(cp.statusReports.length, n, "stopped");
  assert.deepEqual(cp.statusReports[0].body, {
    id: 4242,
    mtoken: "master-token",
    version: "1.1.0",
    error_msg: "TLS key /etc/instance.key not readable",
    url: "https://10.0.0.1:45000",
  });
});

Deno.test("a cancel in a later window is floored away, as in Python", async () => {
  await using rig = await reporterRig({
    tickMs: 60_000,
    heartbeatMs: 60_000,
  });
  const { cp, ledger, reporter } = rig;
  const a = ledger.open(info(1, 100));
  await reporter.flush(); // new_load 100
  ledger.finish(a, "cancelled", 499);
  ledger.open(info(2, 30));
  await reporter.flush(); // max(30 - 100, 0) = 0; the 70 is not carried
  ledger.open(info(3, 200));
  await reporter.flush(); // 200
  await reporter.close();
  assert.deepEqual(
    bodies(cp.statusReports).map((b) => b.new_load),
    [100, 0, 200],
  );
  assert.equal(ledger.window().cancelled, 0);
});

// ---------------------------------------------------------------------------
// A slow or lossy autoscaler: a try without an answer may have been
// processed, so its figures are never sent again.

/** What the test did to the ledger, to compare with what was reported. */
interface Truth {
  received: number;
  served: number;
  cancelled: number;
  rejected: number;
  idxs: number[];
}

/**
 * Runs requests `from..to-1` through the ledger, a few milliseconds apart so
 * they spread over several report windows: every 5th rejected, every 7th
 * an error, every 11th cancelled at once (same window as its arrival).
 */
async function drive(
  ledger: Ledger,
  truth: Truth,
  from: number,
  to: number,
): Promise<void> {
  for (let i = from; i < to; i++) {
    const w = 1 + (i % 6) * 0.5;
    truth.idxs.push(i);
    if (i % 5 === 0) {
      ledger.reject(info(i, w), "budget", 429);
      truth.rejected += w;
      continue;
    }
    const r = ledger.open(info(i, w));
    truth.received += w;
    if (i % 11 === 0) {
      ledger.finish(r, "cancelled", 499);
      truth.cancelled += w;
      continue;
    }
    ledger.start(r);
    await delay(8);
    const ok = i % 7 !== 0;
    ledger.finish(r, ok ? "success" : "error", ok ? 200 : 500);
    if (ok) truth.served += w;
  }
}

const newTruth = (): Truth => ({
  received: 0,
  served: 0,
  cancelled: 0,
  rejected: 0,
  idxs: [],
});

/** How many times each request_idx occurs in the delete bodies. */
function idxCounts(recs: readonly Recorded[]): Map<number, number> {
  const n = new Map<number, number>();
  for (const b of bodies([...recs])) {
    for (const r of b.requests as DeleteItem[]) {
      n.set(r.request_idx, (n.get(r.request_idx) ?? 0) + 1);
    }
  }
  return n;
}

const closeTo = (a: number, b: number, what: string): void =>
  assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} != ${b}`);

Deno.test("answers slower than the try timeout: every figure and request_idx reaches the autoscaler exactly once", async () => {
  await using rig = await reporterRig({
    timeoutMs: 1000,
    attempts: 3,
    deleteBatchSize: 20,
  });
  const { cp, ledger, reporter } = rig;
  // Each answer comes 1.2 s after the body arrived; the worker waits 1 s.
  cp.setDelayMs(1200);
  const truth = newTruth();
  const want = () => truth.received - truth.cancelled;
  reporter.start();
  await drive(ledger, truth, 1, 61);
  // Until the autoscaler has heard of everything (at least once) ...
  await waitFor(
    () =>
      idxCounts(cp.deleteReports).size === truth.idxs.length &&
      sum(bodies(cp.statusReports), "new_load") >= want() - 1e-9 &&
      sum(bodies(cp.statusReports), "cur_perf") >= truth.served - 1e-9,
    12_000,
    "every figure received",
  ).catch(() => {}); // the assertions below say what is missing
  // ... and two more rounds: nothing comes back for a second try.
  const n = cp.statusReports.length;
  await waitFor(() => cp.statusReports.length >= n + 2, 5000, "two rounds");
  await reporter.close();
  const stats = reporter.stats;
  console.log(
    `slow autoscaler: ${cp.statusReports.length} status / ${cp.deleteReports.length} delete bodies received, ` +
      `unconfirmed ${stats.status.unconfirmed} / ${stats.delete.unconfirmed}, ` +
      `attempts ${stats.status.attempts} / ${stats.delete.attempts}`,
  );
  const counts = idxCounts(cp.deleteReports);
  assert.deepEqual(
    [...counts].filter(([, c]) => c !== 1),
    [],
    "each request_idx in exactly one delete body",
  );
  assert.deepEqual([...counts.keys()].sort((a, b) => a - b), truth.idxs);
  // The sums over every body received are the true workload.
  const all = bodies(cp.statusReports);
  closeTo(sum(all, "new_load"), want(), "new_load");
  closeTo(sum(all, "cur_perf"), truth.served, "cur_perf");
  closeTo(sum(all, "rej_load"), truth.rejected, "rej_load");
  // The premise: tries did time out, after their bodies had arrived; every
  // try arrived, one body each, so nothing was resent.
  assert.ok(stats.status.unconfirmed >= 3, "status tries timed out");
  assert.ok(stats.delete.unconfirmed >= 2, "delete tries timed out");
  assert.equal(stats.status.failures, 0);
  assert.equal(stats.delete.failures, 0);
  assert.equal(cp.statusReports.length, stats.status.attempts);
  assert.equal(cp.deleteReports.length, stats.delete.attempts);
  assert.deepEqual(
    ledger.window(),
    { received: 0, served: 0, cancelled: 0, errored: 0, rejected: 0 },
    "everything settled",
  );
  assert.equal(ledger.pendingFinishedCount, 0);
});

Deno.test("reports lost without an answer are never resent: the under-count is exactly their figures", async () => {
  await using rig = await reporterRig({
    timeoutMs: 300,
    attempts: 3,
    deleteBatchSize: 8,
  });
  const { cp, ledger, reporter } = rig;
  const truth = newTruth();
  reporter.start();
  await drive(ledger, truth, 1, 21);
  await waitFor(() => ledger.pendingFinishedCount === 0, 5000, "phase 1");
  // Bodies now reach a stand-in that never answers and never processes.
  cp.setStatusReply({ lost: true });
  cp.setDeleteReply({ lost: true });
  await drive(ledger, truth, 21, 51);
  await waitFor(
    () =>
      cp.lostReports.status.length >= 2 && cp.lostReports.delete.length >= 2,
    5000,
    "lost reports",
  );
  cp.setStatusReply(undefined);
  cp.setDeleteReply(undefined);
  await drive(ledger, truth, 51, 71);
  await waitFor(
    () =>
      ledger.pendingFinishedCount === 0 &&
      Object.values(ledger.window()).every((v) => v === 0),
    5000,
    "everything settled",
  );
  await reporter.flush();
  await reporter.close();
  const stats = reporter.stats;
  const lost = {
    status: bodies(cp.lostReports.status),
    delete: cp.lostReports.delete,
  };
  const got = bodies(cp.statusReports);
  const lostIdxs = [...idxCounts(lost.delete).keys()];
  const lostNew = sum(lost.status, "new_load");
  const lostPerf = sum(lost.status, "cur_perf");
  console.log(
    `lost: ${lost.status.length} status bodies (new_load ${lostNew}, cur_perf ${lostPerf}), ` +
      `${lost.delete.length} delete bodies (${lostIdxs.length} request_idx); ` +
      `unconfirmed ${stats.status.unconfirmed} / ${stats.delete.unconfirmed}`,
  );
  const counts = idxCounts([...cp.deleteReports, ...lost.delete]);
  assert.deepEqual([...counts.keys()].sort((a, b) => a - b), truth.idxs);
  assert.deepEqual(
    [...counts].filter(([, c]) => c !== 1),
    [],
    "each request_idx in exactly one body, processed or lost",
  );
  // No over-count; the under-count is exactly what the lost bodies carried.
  const wantNew = truth.received - truth.cancelled;
  closeTo(sum(got, "new_load") + lostNew, wantNew, "new_load");
  closeTo(sum(got, "cur_perf") + lostPerf, truth.served, "cur_perf");
  closeTo(
    sum(got, "rej_load") + sum(lost.status, "rej_load"),
    truth.rejected,
    "rej_load",
  );
  assert.ok(sum(got, "new_load") <= wantNew + 1e-9, "never over");
  // Each lost body is one unanswered try, counted, and never sent again.
  assert.equal(stats.status.unconfirmed, lost.status.length);
  assert.equal(stats.delete.unconfirmed, lost.delete.length);
  assert.ok(lostIdxs.length <= 8 * stats.delete.unconfirmed, "batch bound");
  assert.ok(lostNew > 0 && lostIdxs.length > 0, "the loss is real");
});

Deno.test("post tells provably-not-processed from may-have-been-processed", async () => {
  await using cp = await controlPlane();
  const never = new AbortController().signal;
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedUrl = `http://127.0.0.1:${closed.addr.port}/worker_status/`;
  closed.close();
  const url = `${cp.url}/worker_status/`;
  const outcome = async (u: string, ms = 2000) =>
    (await post(u, "{}", never, ms)).outcome;
  assert.equal(await outcome(url), "accepted");
  assert.equal(await outcome(closedUrl), "refused", "connection refused");
  cp.setStatusReply({ status: 503 });
  assert.equal(await outcome(url), "refused", "503");
  cp.setStatusReply({ status: 504 });
  assert.equal(await outcome(url), "unknown", "gateway timeout");
  cp.setStatusReply({ lost: true });
  assert.equal(await outcome(url, 200), "unknown", "no answer in time");
  const stop = new AbortController();
  const aborted = post(url, "{}", stop.signal, 5000);
  await delay(50);
  stop.abort();
  assert.equal((await aborted).outcome, "aborted");
});
