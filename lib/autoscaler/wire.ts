/**
 * Wire side of the autoscaler reports: the `/worker_status/`,
 * `/delete_requests/` and launch-failure bodies (floats written the way
 * Python's `json.dumps` writes them: `0.0`, not `0`), the POST that tells
 * "provably not processed" from "may have been processed", and the
 * launch-failure beacon. {@linkcode Reporter} in
 * `reporter.ts` drives them.
 *
 * Longer than most modules: both report bodies in Python's exact spelling and the one delivery function they share.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { pythonFloatRepr } from "../auth/python_json.ts";
import { DEFAULT_VERSION, type ReportIdentity } from "../config/env.ts";
import { delay } from "../std/async.ts";
import type { LedgerWindow, RequestRecord } from "../traffic/ledger.ts";

const logger = getLogger(["edgeworker", "reporter"]);

/** `POST /worker_status/` body; field names verbatim (typo included). */
export interface WorkerStatus {
  /** int: `CONTAINER_ID`. */
  id: number;
  /** `MASTER_TOKEN`. */
  mtoken: string;
  /** Protocol version, e.g. `"1.1.0"`. */
  version: string;
  /** float: seconds from start to "model loaded"; 0.0 before. */
  loadtime: number;
  /** float: in-flight workload (absolute, not a rate). */
  cur_load: number;
  /** float: workload rejected since the last accepted report. */
  rej_load: number;
  /** float: max(received - cancelled, 0) since the last accepted report. */
  new_load: number;
  /** Sticky error; "" when healthy. */
  error_msg: string;
  /** float: benchmark throughput, workload units per second. */
  max_perf: number;
  /** float: workload served since the last accepted report (a sum). */
  cur_perf: number;
  /** int: always 0. */
  cur_capacity: number;
  /** int: always 0. */
  max_capacity: number;
  /** int: in-flight requests (session-bound ones excluded). */
  num_requests_working: number;
  /** int: requests received since start (spelling verbatim). */
  num_requests_recieved: number;
  /** float: GB used on "/" now minus at the previous accepted report. */
  additional_disk_usage: number;
  /** int[]: `request_idx` of the in-flight requests (see {@linkcode JsonInteger}). */
  working_request_idxs: JsonInteger[];
  /** Public URL of the worker. */
  url: string;
}

/** The ledger figures a status needs (a `Ledger` satisfies it). */
export interface StatusLedger {
  /** In-flight workload (`cur_load`). */
  readonly currentLoad: number;
  /** Records still queued or working. */
  readonly inFlight: Iterable<RequestRecord>;
  /** Requests received since start. */
  readonly receivedCount: number;
}

/** Everything {@linkcode buildWorkerStatus} reads. */
export interface WorkerStatusInput {
  /** Who reports. */
  identity: ReportIdentity;
  /** Read for in-flight figures. */
  ledger: StatusLedger;
  /** Workload sums to report; settle exactly this object after a 2xx. */
  window: LedgerWindow;
  /** Seconds from start to "model loaded"; 0 before. */
  loadtime: number;
  /** Sticky error; "" when healthy. */
  errorMsg: string;
  /** Benchmark throughput, workload units per second. */
  maxPerf: number;
  /** GB used on "/" now minus at the previous accepted report. */
  additionalDiskUsage: number;
}

/** Float keys of {@linkcode WorkerStatus}: written with a decimal point. */
const FLOAT_KEYS: ReadonlySet<string> = new Set([
  "loadtime",
  "cur_load",
  "rej_load",
  "new_load",
  "max_perf",
  "cur_perf",
  "additional_disk_usage",
]);

const finite = (x: number): number => Number.isFinite(x) ? x : 0;
const int = (x: number): number => Math.trunc(finite(x));

/** A `JSON.rawJSON` value: `JSON.stringify` writes its text as is. */
export interface RawJson {
  readonly rawJSON: string;
}

/**
 * A `request_idx` as it goes back to the autoscaler: a number, or for an
 * integer beyond 2^53 a {@linkcode RawJson} of its exact digits, so every
 * `JSON.stringify` (the report, `/status`) writes what the client sent.
 */
export type JsonInteger = number | RawJson;

const rawJson = (JSON as unknown as { rawJSON(text: string): RawJson })
  .rawJSON;

/** `request_idx` as sent: exact digits for a bigint; a non-integral number as is (Python echoes it); non-finite → 0. */
export function requestIdxJson(x: number | bigint): JsonInteger {
  return typeof x === "bigint" ? rawJson(x.toString()) : finite(x);
}

/** A float as Python's `json.dumps` writes it (`0.0`, `1e+16`); non-finite → 0.0. */
const pyFloat = (x: number): string => pythonFloatRepr(finite(x));

/** Whether a request counts in the working set (not bound to a session). */
function reported(r: RequestRecord): boolean {
  return r.sessionId === undefined || r.kind === "session";
}

/**
 * Builds the `/worker_status/` body from a ledger snapshot. Pure: reads its
 * input, changes nothing.
 */
export function buildWorkerStatus(input: WorkerStatusInput): WorkerStatus {
  const { identity, ledger, window } = input;
  const idxs: JsonInteger[] = [];
  for (const r of ledger.inFlight) {
    if (reported(r)) idxs.push(requestIdxJson(r.requestIdx));
  }
  return {
    id: int(identity.id),
    mtoken: identity.mtoken,
    version: identity.version || DEFAULT_VERSION,
    loadtime: finite(input.loadtime),
    cur_load: finite(ledger.currentLoad),
    rej_load: finite(window.rejected),
    new_load: Math.max(finite(window.received - window.cancelled), 0),
    error_msg: input.errorMsg,
    max_perf: finite(input.maxPerf),
    cur_perf: finite(window.served),
    cur_capacity: 0,
    max_capacity: 0,
    num_requests_working: idxs.length,
    num_requests_recieved: int(ledger.receivedCount),
    additional_disk_usage: finite(input.additionalDiskUsage),
    working_request_idxs: idxs,
    url: identity.url,
  };
}

/** JSON text of a status, floats as Python writes them (`"cur_load":0.0`). */
export function encodeWorkerStatus(status: WorkerStatus): string {
  const parts = Object.entries(status).map(([k, v]) => {
    const text = FLOAT_KEYS.has(k) ? pyFloat(v as number) : JSON.stringify(v);
    return `${JSON.stringify(k)}:${text}`;
  });
  return `{${parts.join(",")}}`;
}

/** Python's status strings for `/delete_requests/`. */
const STATUS_TEXT: Record<string, string> = {
  success: "Success",
  error: "Error",
  cancelled: "Cancelled",
  rejected: "Rejected",
};

/**
 * JSON text of a `/delete_requests/` body in the current (vast-cli HEAD)
 * shape. `success` is true for success and cancelled, as in Python.
 */
export function encodeDeleteRequests(
  identity: ReportIdentity,
  records: readonly RequestRecord[],
): string {
  const items = records.map((r) => {
    const started = r.workStartedAt ?? r.enteredQueueAt;
    const done = r.workCompletedAt ?? started;
    const success = r.status === "success" || r.status === "cancelled";
    return `{"request_idx":${
      JSON.stringify(requestIdxJson(r.requestIdx))
    },"success":${success},` +
      `"status":${JSON.stringify(STATUS_TEXT[r.status] ?? "Error")},` +
      `"entered_queue_at":${pyFloat(r.enteredQueueAt)},` +
      `"work_started_at":${pyFloat(started)},` +
      `"work_completed_at":${pyFloat(done)}}`;
  });
  return `{"worker_id":${int(identity.id)},"mtoken":${
    JSON.stringify(identity.mtoken)
  },"requests":[${items.join(",")}]}`;
}

/** The 5-key body `report_error_and_exit` sends when the worker cannot start. */
export function encodeLaunchFailure(
  identity: ReportIdentity,
  errorMsg: string,
): string {
  return JSON.stringify({
    id: int(identity.id),
    mtoken: identity.mtoken,
    version: identity.version || DEFAULT_VERSION,
    error_msg: errorMsg,
    url: identity.url,
  });
}

/** Python skips this address for `/delete_requests/`. */
export const NO_DELETE_ADDR = "https://cloud.vast.ai/api/v0";

/** The addresses `/delete_requests/` goes to (all but {@linkcode NO_DELETE_ADDR}). */
export function deleteAddresses(addrs: readonly string[]): string[] {
  return cleanAddrs(addrs).filter((a) => a !== NO_DELETE_ADDR);
}

/** Trims addresses and their trailing slashes; drops empty ones. */
export function cleanAddrs(addrs: readonly string[]): string[] {
  return addrs.map((a) => a.trim().replace(/\/+$/, "")).filter((a) => a !== "");
}

/**
 * How one POST ended, by what it proves about the autoscaler:
 * - `accepted`: a 2xx answer.
 * - `refused`: provably not processed: a non-2xx answer, or no connection
 *   (refused, DNS, TLS), so the same figures may be sent again.
 * - `unknown`: the body may have been processed: no answer in time, the
 *   connection was lost after the request went out, or a gateway timeout
 *   (504, Cloudflare's 524: the origin got the request and was slow).
 * - `aborted`: the caller's signal stopped it.
 */
export type PostResult =
  | { outcome: "accepted" }
  | { outcome: "refused" | "unknown" | "aborted"; error: string };

/** Gateway timeouts: a proxy passed the request on and gave up waiting. */
const GATEWAY_TIMEOUTS: ReadonlySet<number> = new Set([504, 524]);

/** Message of an error and of its causes (Deno puts the detail in `cause`). */
function errorText(error: unknown): string {
  const parts: string[] = [];
  for (let e = error, depth = 0; e !== undefined && depth < 4; depth++) {
    parts.push(
      e instanceof Error ? `${e.name}: ${e.message}` : String(e),
    );
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(" <- ");
}

/**
 * POSTs JSON and classifies the result (see {@linkcode PostResult}). Never
 * throws.
 */
export async function post(
  url: string,
  body: string,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<PostResult> {
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
    });
    await res.body?.cancel();
    if (res.ok) return { outcome: "accepted" };
    const error = `HTTP ${res.status}`;
    return GATEWAY_TIMEOUTS.has(res.status)
      ? { outcome: "unknown", error }
      : { outcome: "refused", error };
  } catch (e) {
    const error = errorText(e);
    if (signal.aborted) return { outcome: "aborted", error };
    // Deno (hyper) labels failures before any byte was sent "(Connect)";
    // anything else may have reached the server.
    return error.includes("client error (Connect)")
      ? { outcome: "refused", error }
      : { outcome: "unknown", error };
  }
}

/** Options of {@linkcode runLaunchFailureBeacon}. */
export interface LaunchFailureBeaconOptions {
  /** `REPORT_ADDR` split on ","; every one gets each beacon. */
  reportAddrs: string[];
  /** Who reports. */
  identity: ReportIdentity;
  /** Why the worker cannot start. */
  errorMsg: string;
  /** Time between beacons. @default {10000} */
  intervalMs?: number;
  /** Per post. @default {10000} */
  timeoutMs?: number;
  /** Stops the beacon. */
  signal: AbortSignal;
}

/**
 * POSTs the launch-failure body once to every address's `/worker_status/`;
 * resolves to the first failure cause, if any. Never throws.
 */
export async function reportLaunchFailure(
  options: Omit<LaunchFailureBeaconOptions, "intervalMs">,
): Promise<string | undefined> {
  const body = encodeLaunchFailure(options.identity, options.errorMsg);
  let failure: string | undefined;
  for (const addr of cleanAddrs(options.reportAddrs)) {
    const result = await post(
      `${addr}/worker_status/`,
      body,
      options.signal,
      options.timeoutMs ?? 10_000,
    );
    if (result.outcome !== "accepted") failure ??= `${addr}: ${result.error}`;
  }
  return failure;
}

/**
 * When the worker cannot start (bad config, TLS files, port taken), POSTs
 * `{"id","mtoken","version","error_msg","url"}` to every address's
 * `/worker_status/` every interval until `signal` aborts, so the instance
 * never fails silently. Resolves when stopped; never throws.
 */
export async function runLaunchFailureBeacon(
  options: LaunchFailureBeaconOptions,
): Promise<void> {
  const { signal, errorMsg } = options;
  logger.error("Cannot start, reporting to the autoscaler: {errorMsg}", {
    errorMsg,
  });
  let warned = false;
  while (!signal.aborted) {
    const error = await reportLaunchFailure(options);
    if (error !== undefined && !warned && !signal.aborted) {
      warned = true;
      logger.warn("Launch-failure report failed: {error}", { error });
    }
    await delay(options.intervalMs ?? 10_000, { signal }).catch(() => {});
  }
}
