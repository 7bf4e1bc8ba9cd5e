import assert from "node:assert/strict";
import { Ledger, type RequestInfo } from "../lib/ledger.ts";
import {
  buildWorkerStatus,
  deleteAddresses,
  encodeDeleteRequests,
  encodeLaunchFailure,
  encodeWorkerStatus,
  pyFloat,
  type ReporterIdentity,
} from "../lib/reporter.ts";

const IDENTITY: ReporterIdentity = {
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

Deno.test("pyFloat writes floats as Python does", () => {
  assert.equal(pyFloat(0), "0.0");
  assert.equal(pyFloat(100), "100.0");
  assert.equal(pyFloat(1.25), "1.25");
  assert.equal(pyFloat(1e21), "1e+21");
  assert.equal(pyFloat(1e-7), "1e-7");
  assert.equal(pyFloat(NaN), "0.0");
  assert.equal(JSON.parse(pyFloat(1700000000.123)), 1700000000.123);
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
