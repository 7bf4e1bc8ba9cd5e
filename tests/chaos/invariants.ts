/**
 * The invariants of a chaos run, judged from what was collected: the
 * worker's `/metrics` and `/status`, the reports the autoscaler accepted
 * (before and after SIGTERM), the model's calls, `/proc` figures, and what
 * each client saw. Each invariant names the ingredients it blames.
 *
 * @module
 */
import type { Recorded } from "../../dev/control_plane.ts";
import type { WorkerStatus } from "../../lib/autoscaler/wire.ts";
import type { DeleteItem } from "../helpers/reporting.ts";
import type { DeleteStatus, Verdict } from "./client.ts";
import { WARM_IDX } from "./ingredients.ts";
import type { ModelCall } from "./model.ts";
import type { WorkerMetricsBook } from "./worker_process.ts";

/** One invariant and whether it held. */
export interface Invariant {
  name: string;
  ok: boolean;
  /** Why it failed (or a short figure when it held). */
  detail: string;
  /** Ingredients blamed, with counts, when per-request. */
  blame?: Record<string, number>;
  /** A warning only: printed, but the run still passes. */
  soft?: boolean;
}

/** What happened to one request. */
export interface RequestRun {
  idx: number;
  ingredient: string;
  route: string;
  verdict: Verdict;
  workload?: number;
  saneWorkload: boolean;
  /** Delete items the autoscaler accepted for it. */
  reported: DeleteItem[];
  /** Delete items of its helper request (see `Verdict.helper`). */
  helperReported: DeleteItem[];
}

/** Everything the invariants are judged from. */
export interface RunFacts {
  runs: RequestRun[];
  /** Delete items accepted before SIGTERM. */
  items: DeleteItem[];
  /** `request_idx` accepted by the end, after SIGTERM. */
  finalIdx: ReadonlySet<number>;
  /** Status reports accepted (before SIGTERM). */
  statuses: readonly Recorded[];
  /** Index in `statuses` where the probes start. */
  mark: number;
  probeRuns: readonly Verdict[];
  probes: number;
  probeTokens: number;
  metrics: WorkerMetricsBook;
  status: { json: Record<string, unknown>; text: string };
  calls: readonly ModelCall[];
  base: { rssBytes: number; fds: number };
  after: { rssBytes: number; fds: number };
  exit: Deno.CommandStatus;
  nonJson: { count: number; examples: string[] };
  masterToken: string;
  rssSlackBytes: number;
  fdSlack: number;
}

/** `true` if the worker must report the request (some time). */
export function mustReport(r: RequestRun): boolean {
  return Array.isArray(r.verdict.record) &&
    !r.verdict.record.includes("absent");
}

/**
 * Judges a run; attaches the delete items to their requests on the way.
 * Returns the invariants, the accepted delete statuses by status, and the
 * last accepted `num_requests_recieved`.
 */
export function judge(facts: RunFacts): {
  invariants: Invariant[];
  reported: Record<DeleteStatus, number>;
  received: number;
} {
  const {
    runs,
    items,
    finalIdx,
    statuses,
    mark,
    probeRuns,
    probes,
    probeTokens,
    metrics,
    status,
    base,
    after,
    exit,
    nonJson,
    masterToken,
    rssSlackBytes,
    fdSlack,
  } = facts;
  const calls0 = facts.calls;
  const probeWant = probes * probeTokens;
  // Attach the accepted delete items to their requests.
  const byIdx = new Map(runs.map((r) => [r.idx, r]));
  const unknown: number[] = [];
  for (const d of items) {
    const r = byIdx.get(d.request_idx);
    const h = byIdx.get(d.request_idx - WARM_IDX);
    if (r) r.reported.push(d);
    else if (h?.verdict.helper) h.helperReported.push(d);
    else unknown.push(d.request_idx);
  }
  const reported: Record<DeleteStatus, number> = {
    Success: 0,
    Error: 0,
    Cancelled: 0,
    Rejected: 0,
  };
  for (const d of items) reported[d.status as DeleteStatus]++;
  const last = statuses.at(-1)?.body as WorkerStatus | undefined;

  const inv: Invariant[] = [];
  const add = (
    name: string,
    ok: boolean,
    detail: string,
    blame?: Record<string, number>,
    soft = false,
  ) =>
    inv.push({
      name,
      ok,
      detail,
      ...(blame ? { blame } : {}),
      ...(soft ? { soft } : {}),
    });
  /** An invariant that holds when `found` is empty; else the first six,
   * each as `describe` tells it. */
  const addNone = <T>(
    name: string,
    found: T[],
    okText: string,
    describe: (x: T) => string,
    blamed?: Record<string, number>,
  ) =>
    add(
      name,
      found.length === 0,
      found.length === 0 ? okText : found.slice(0, 6).map(describe).join("; "),
      blamed,
    );

  // 1. The books balance.
  const w = metrics.outcomes;
  const finished = w.success + w.error + w.cancelled;
  const received = last?.num_requests_recieved ?? NaN;
  add(
    "books balance: received = success + error + cancelled (+ rejected)",
    received === finished && metrics.inFlight === 0,
    `received ${received} (+${w.rejected} rejected), success ${w.success} + error ${w.error} + cancelled ${w.cancelled} = ${finished}, in flight ${metrics.inFlight}`,
  );
  const distinct = new Set(items.map((d) => d.request_idx)).size;
  add(
    "worker /metrics = autoscaler's /delete_requests/",
    w.success === reported.Success && w.error === reported.Error &&
      w.cancelled === reported.Cancelled && w.rejected === reported.Rejected &&
      finished + w.rejected === distinct,
    `metrics s/e/c/r ${w.success}/${w.error}/${w.cancelled}/${w.rejected}, reported ${reported.Success}/${reported.Error}/${reported.Cancelled}/${reported.Rejected} (${distinct} distinct idx)`,
  );

  // 2. Nothing in flight, queues empty.
  const st = status.json;
  // Parsed JSON: plain numbers (the type allows big integers as raw text).
  const working = (last?.working_request_idxs ?? []) as unknown as number[];
  const nothingLeft = metrics.inFlight === 0 && metrics.queued === 0 &&
    metrics.workloadInFlight === 0 && st.in_flight === 0 && st.queued === 0 &&
    st.queue_workload === 0 && working.length === 0 && last?.cur_load === 0;
  add(
    "nothing in flight, queues empty",
    nothingLeft,
    `metrics in_flight ${metrics.inFlight} queued ${metrics.queued} workload ${metrics.workloadInFlight}; /status in_flight ${st.in_flight} queued ${st.queued} queue_workload ${st.queue_workload}; last report cur_load ${last?.cur_load} working [${
      working.slice(0, 10).join(",")
    }${working.length > 10 ? ",…" : ""}]`,
    blameIdx(working, byIdx),
  );

  // 3. Every request_idx reported once, with the right status.
  const missing: RequestRun[] = [];
  const dup: RequestRun[] = [];
  const wrong: RequestRun[] = [];
  const ghost: RequestRun[] = [];
  for (const r of runs) {
    if (r.verdict.helper) {
      const h = r.helperReported;
      if (h.length === 0) missing.push(r);
      else if (h.length > 1) dup.push(r);
      else if (h[0].status !== "Success") wrong.push(r);
    }
    const rec = r.verdict.record;
    const n = r.reported.length;
    if (n > 1) dup.push(r);
    if (rec === "none") {
      if (n > 0) ghost.push(r);
    } else if (rec !== "any") {
      if (n === 0) {
        if (!rec.includes("absent")) missing.push(r);
      } else if (!rec.includes(r.reported[0].status as DeleteStatus)) {
        wrong.push(r);
      }
    }
  }
  add(
    "every request_idx reported exactly once",
    missing.length + dup.length + ghost.length + unknown.length === 0,
    `${missing.length} missing${examples(missing)}, ${dup.length} duplicated${
      examples(dup)
    }, ${ghost.length} reported but never admitted${
      examples(ghost)
    }, ${unknown.length} unknown`,
    blame([...missing, ...dup, ...ghost]),
  );
  addNone(
    "reported status matches what the client did",
    wrong,
    "all match",
    (r) =>
      r.reported.length === 1 && Array.isArray(r.verdict.record) &&
        !r.verdict.record.includes(r.reported[0].status as DeleteStatus)
        ? `${r.idx} ${r.ingredient}: expected ${
          r.verdict.record.join("|")
        }, got ${r.reported[0].status}`
        : `${
          r.idx + WARM_IDX
        } (helper of ${r.idx} ${r.ingredient}): expected Success, got ${
          r.helperReported[0]?.status
        }`,
    blame(wrong),
  );

  // 4. What clients saw.
  const bad = runs.filter((r) => r.verdict.problems.length > 0);
  addNone(
    "every answer is the expected one (2xx/4xx/5xx with a JSON body)",
    bad,
    "all as expected",
    (r) => `${r.idx} ${r.ingredient}: ${r.verdict.problems[0]}`,
    blame(bad),
  );

  // 5. The model: no call left open, none forwarded twice.
  const calls = [...calls0];
  const stuck = calls.filter((c) => c.end === "open");
  const twice = calls.filter((c) => c.arrivals > 1);
  add(
    "every model call ended (no stall outlives its client)",
    stuck.length === 0,
    `${stuck.length} open${
      stuck.length ? ` (${stuck.slice(0, 6).map((c) => c.idx).join(",")})` : ""
    }`,
    blameIdx(stuck.map((c) => c.idx), byIdx),
  );
  // Deno's fetch sends a request again when a reused keep-alive connection
  // closes before any answer byte: the model may run it twice. Not the
  // worker's code, so a warning.
  add(
    "no request reached the model twice",
    twice.length === 0,
    `${twice.length} twice${
      twice.length
        ? ` (${twice.slice(0, 6).map((c) => `${c.idx} ${c.chaos}`).join(", ")})`
        : ""
    }`,
    blameIdx(twice.map((c) => c.idx), byIdx),
    true,
  );

  // 6. Workload sums.
  const probeOk = probeRuns.every((v) => v.problems.length === 0);
  const probeSums = ["cur_perf", "new_load"].map((f) =>
    sumAfter(statuses, mark, f as "cur_perf" | "new_load")
  );
  const probeRej = sumAfter(statuses, mark, "rej_load");
  add(
    "a normal request answered after the chaos",
    probeOk,
    probeOk
      ? `${probes} of ${probes} answered 200`
      : probeRuns.find((v) => v.problems.length)!.problems[0],
  );
  add(
    "reported workload sums after the chaos are exact",
    probeSums[0] === probeWant && probeSums[1] === probeWant && probeRej === 0,
    `${probes} probes × ${probeTokens}: cur_perf ${probeSums[0]}, new_load ${
      probeSums[1]
    }, rej_load ${probeRej} (want ${probeWant}, ${probeWant}, 0)`,
  );
  const insane = runs.filter((r) => !r.saneWorkload && r.reported.length > 0);
  if (insane.length === 0) {
    const want = (s: DeleteStatus) =>
      runs.reduce(
        (acc, r) =>
          acc + (r.reported[0]?.status === s ? r.workload ?? 0 : 0) +
          (r.helperReported[0]?.status === s ? 1 : 0),
        0,
      );
    const perf = statuses.reduce(
      (a, r) => a + (r.body as WorkerStatus).cur_perf,
      0,
    );
    const rej = statuses.reduce(
      (a, r) => a + (r.body as WorkerStatus).rej_load,
      0,
    );
    add(
      "reported workload sums over the run are exact",
      perf === want("Success") && rej === want("Rejected"),
      `cur_perf ${perf} (want ${want("Success")}), rej_load ${rej} (want ${
        want("Rejected")
      })`,
    );
  }

  // 7. Resources back near the warm baseline; no secret shown.
  add(
    "RSS back near its baseline",
    after.rssBytes <= base.rssBytes + rssSlackBytes,
    `${mb(base.rssBytes)} MB -> ${mb(after.rssBytes)} MB (slack ${
      mb(rssSlackBytes)
    } MB)`,
  );
  add(
    "open descriptors back near the baseline",
    after.fds <= base.fds + fdSlack,
    `${base.fds} -> ${after.fds} (slack ${fdSlack})`,
  );
  const leaks = [
    status.text.includes(masterToken) ? "/status" : "",
    metrics.text.includes(masterToken) ? "/metrics" : "",
  ].filter((s) => s);
  add(
    "MASTER_TOKEN never shown on /status or /metrics",
    leaks.length === 0,
    leaks.length === 0 ? "not shown" : `shown on ${leaks.join(" and ")}`,
  );
  const unflushed = runs.filter((r) => mustReport(r) && !finalIdx.has(r.idx));
  add(
    "after SIGTERM every admitted request is reported",
    unflushed.length === 0,
    `${unflushed.length} never reported${examples(unflushed)}`,
    blame(unflushed),
  );
  // Deno.serve prints a response body stream that errors (a broken model
  // stream relayed) with console.error: a warning until the relay avoids it.
  const nj = nonJson;
  add(
    "every line the worker logs is JSON (EDGEWORKER_LOG_FORMAT=json)",
    nj.count === 0,
    nj.count === 0
      ? "all JSON"
      : `${nj.count} other lines, e.g. ${
        nj.examples.map((e) => JSON.stringify(e)).join(" ")
      }`,
    undefined,
    true,
  );
  add(
    "worker exits 0 on SIGTERM after the chaos",
    exit.code === 0,
    `exit code ${exit.code}${exit.signal ? ` (${exit.signal})` : ""}`,
  );

  return { invariants: inv, reported, received };
}

/** Sum of a numeric status field over the records from `from` on. */
export function sumAfter(
  records: readonly Recorded[],
  from: number,
  field: "cur_perf" | "new_load" | "rej_load",
): number {
  return records.slice(from).reduce(
    (s, r) => s + (r.body as WorkerStatus)[field],
    0,
  );
}

function blame(runs: readonly RequestRun[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of runs) out[r.ingredient] = (out[r.ingredient] ?? 0) + 1;
  return out;
}

function blameIdx(
  idxs: readonly number[],
  byIdx: ReadonlyMap<number, RequestRun>,
): Record<string, number> {
  return blame(idxs.flatMap((i) => byIdx.get(i) ?? []));
}

function examples(runs: readonly RequestRun[]): string {
  if (runs.length === 0) return "";
  return ` (${
    runs.slice(0, 4).map((r) => `${r.idx} ${r.ingredient}`).join(", ")
  }${runs.length > 4 ? ", …" : ""})`;
}

function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}
