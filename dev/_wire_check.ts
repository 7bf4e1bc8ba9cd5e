/**
 * Checks of the report bodies a worker sends the control plane, field by
 * field, against the shapes in `docs`' protocol reference (§7): the full
 * `/worker_status/` body (17 keys, `num_requests_recieved` spelled as
 * Python spells it), the 5-key body a start script sends when the worker
 * cannot start, and the three `/delete_requests/` shapes the autoscaler
 * accepts (vast-cli HEAD `requests`, SDK 1.1.0 `request_idxs` + `success`,
 * the first `request_idxs` only). Each problem names its field.
 *
 * @module
 */
import { isObject } from "./_serve.ts";

/** One thing wrong with a body. */
export interface Problem {
  /** Path of the field, e.g. `cur_load` or `requests[2].status`. */
  field: string;
  /** What is wrong with it. */
  error: string;
}

type Check = (v: unknown) => string | undefined;

const isInt = (v: unknown): v is number =>
  typeof v === "number" && Number.isInteger(v);
const int: Check = (v) => isInt(v) ? undefined : "expected an integer";
const count: Check = (v) =>
  isInt(v) && v >= 0 ? undefined : "expected an integer >= 0";
const zero: Check = (v) => v === 0 ? undefined : "expected 0 (always 0)";
const float: Check = (v) =>
  typeof v === "number" && Number.isFinite(v)
    ? undefined
    : "expected a finite number";
const amount: Check = (v) =>
  float(v) ?? ((v as number) < 0 ? "expected a number >= 0" : undefined);
const text: Check = (v) =>
  typeof v === "string" ? undefined : "expected a string";
const nonEmpty: Check = (v) =>
  typeof v === "string" && v !== "" ? undefined : "expected a non-empty string";
const bool: Check = (v) =>
  typeof v === "boolean" ? undefined : "expected true or false";
const url: Check = (v) => {
  if (typeof v !== "string") return "expected a string";
  try {
    const u = new URL(v);
    return u.protocol === "http:" || u.protocol === "https:"
      ? undefined
      : "expected an http(s) URL";
  } catch {
    return "expected an http(s) URL";
  }
};
const idxList: Check = (v) =>
  Array.isArray(v) && v.every(isInt)
    ? undefined
    : "expected an array of integers";

/** Every `/worker_status/` key (SDK 1.1.0, verbatim) and its check. */
const STATUS_FIELDS: Record<string, Check> = {
  id: count,
  mtoken: text,
  version: nonEmpty,
  loadtime: amount,
  cur_load: amount,
  rej_load: amount,
  new_load: amount,
  error_msg: text,
  max_perf: amount,
  cur_perf: amount,
  cur_capacity: zero,
  max_capacity: zero,
  num_requests_working: count,
  num_requests_recieved: count,
  additional_disk_usage: float,
  working_request_idxs: idxList,
  url,
};

/** The keys of `report_error_and_exit`'s body (start script, launch failure). */
const FAILURE_KEYS = ["id", "mtoken", "version", "error_msg", "url"];

const STATUS_NAMES = new Set(["Success", "Error", "Cancelled", "Rejected"]);

function checkFields(
  body: Record<string, unknown>,
  fields: Record<string, Check>,
  prefix = "",
): Problem[] {
  const problems: Problem[] = [];
  for (const [key, check] of Object.entries(fields)) {
    if (!(key in body)) {
      problems.push({ field: prefix + key, error: "missing" });
      continue;
    }
    const error = check(body[key]);
    if (error) problems.push({ field: prefix + key, error });
  }
  for (const key of Object.keys(body)) {
    if (!(key in fields)) {
      problems.push({ field: prefix + key, error: "unknown field" });
    }
  }
  return problems;
}

/** Which `/worker_status/` shape a body has. */
export type StatusShape = "full" | "launch-failure";

/** The shape of a `/worker_status/` body and what is wrong with it. */
export function checkWorkerStatus(
  body: unknown,
): { shape: StatusShape; problems: Problem[] } {
  if (!isObject(body)) {
    return {
      shape: "full",
      problems: [{ field: "(body)", error: "expected a JSON object" }],
    };
  }
  const keys = Object.keys(body);
  if (keys.every((k) => FAILURE_KEYS.includes(k)) && "error_msg" in body) {
    // The start script sends `"url": "${URL:-}"`: empty before it knows it.
    const fields: Record<string, Check> = {
      ...Object.fromEntries(FAILURE_KEYS.map((k) => [k, STATUS_FIELDS[k]])),
      error_msg: nonEmpty,
      url: (v) => v === "" ? undefined : url(v),
    };
    return { shape: "launch-failure", problems: checkFields(body, fields) };
  }
  const problems = checkFields(body, STATUS_FIELDS);
  const idxs = body.working_request_idxs;
  if (
    problems.length === 0 && Array.isArray(idxs) &&
    body.num_requests_working !== idxs.length
  ) {
    problems.push({
      field: "num_requests_working",
      error:
        `is ${body.num_requests_working} but working_request_idxs lists ${idxs.length}`,
    });
  }
  return { shape: "full", problems };
}

/** Which `/delete_requests/` shape a body has. */
export type DeleteShape = "requests" | "request_idxs";

/** One finished request, whatever the body's shape. */
export interface FinishedRequest {
  requestIdx: number;
  success: boolean;
  /** `Success`, `Error`, `Cancelled`, `Rejected`; `null` in the older shapes. */
  status: string | null;
  enteredQueueAt: number | null;
  workStartedAt: number | null;
  workCompletedAt: number | null;
}

/** Checks a `/delete_requests/` body; lists its requests when it is valid. */
export function checkDeleteRequests(body: unknown): {
  shape: DeleteShape;
  problems: Problem[];
  finished: FinishedRequest[];
} {
  if (!isObject(body)) {
    return {
      shape: "requests",
      problems: [{ field: "(body)", error: "expected a JSON object" }],
      finished: [],
    };
  }
  if (!("requests" in body) && "request_idxs" in body) {
    // SDK 1.1.0 sends `success`; the first version (2025-10-08) did not.
    const fields: Record<string, Check> = {
      worker_id: count,
      request_idxs: idxList,
    };
    if ("mtoken" in body) fields.mtoken = text;
    if ("success" in body) fields.success = bool;
    const problems = checkFields(body, fields);
    const finished = problems.length > 0
      ? []
      : (body.request_idxs as number[]).map((requestIdx) => ({
        requestIdx,
        success: body.success !== false,
        status: null,
        enteredQueueAt: null,
        workStartedAt: null,
        workCompletedAt: null,
      }));
    return { shape: "request_idxs", problems, finished };
  }
  const problems = checkFields(body, {
    worker_id: count,
    mtoken: text,
    requests: (v) => Array.isArray(v) ? undefined : "expected an array",
  });
  const finished: FinishedRequest[] = [];
  const items = Array.isArray(body.requests) ? body.requests : [];
  items.forEach((item, i) => {
    const at = `requests[${i}].`;
    if (!isObject(item)) {
      problems.push({ field: `requests[${i}]`, error: "expected an object" });
      return;
    }
    const own = checkFields(item, {
      request_idx: int,
      success: bool,
      status: (v) =>
        typeof v === "string" && STATUS_NAMES.has(v)
          ? undefined
          : `expected one of ${[...STATUS_NAMES].join(", ")}`,
      entered_queue_at: amount,
      work_started_at: amount,
      work_completed_at: amount,
    }, at);
    if (own.length === 0) {
      const { entered_queue_at: q, work_started_at: s, work_completed_at: c } =
        item as Record<string, number>;
      if (s < q) {
        own.push({
          field: `${at}work_started_at`,
          error: "before entered_queue_at",
        });
      }
      if (c < s) {
        own.push({
          field: `${at}work_completed_at`,
          error: "before work_started_at",
        });
      }
      // Python reports a cancelled request as a success.
      const success = item.status === "Success" || item.status === "Cancelled";
      if (item.success !== success) {
        own.push({
          field: `${at}success`,
          error: `must be ${success} for status ${item.status}`,
        });
      }
    }
    problems.push(...own);
    if (own.length === 0) {
      finished.push({
        requestIdx: item.request_idx as number,
        success: item.success as boolean,
        status: item.status as string,
        enteredQueueAt: item.entered_queue_at as number,
        workStartedAt: item.work_started_at as number,
        workCompletedAt: item.work_completed_at as number,
      });
    }
  });
  return {
    shape: "requests",
    problems,
    finished: problems.length ? [] : finished,
  };
}
