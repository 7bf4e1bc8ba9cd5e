/**
 * One chaos run: a worker subprocess between the chaos model and an
 * autoscaler with outages, thousands of requests mixing the selected
 * ingredients (seeded, so a run replays), then the books: every figure the
 * worker shows and the autoscaler received is checked against what the
 * clients did. {@linkcode runChaos} returns the report; `books.ts` prints it.
 *
 * @module
 */
import { delay } from "../../lib/std/async.ts";
import type { Recorded } from "../../dev/control_plane.ts";
import { urlSignatureMessage } from "../../dev/_signing.ts";
import type { WorkerStatus } from "../../lib/autoscaler/wire.ts";
import { deleteItems } from "../helpers/reporting.ts";
import { Autoscaler, type OutageKind } from "./autoscaler.ts";
import {
  checkWorkerAnswer,
  type DeleteStatus,
  envelopeText,
  readBody,
  relayed,
  type RequestCtx,
  send,
  type Verdict,
} from "./client.ts";
import { type Ingredient, INGREDIENTS } from "./ingredients.ts";
import {
  type Invariant,
  judge,
  mustReport,
  type RequestRun,
} from "./invariants.ts";
import { type ChaosModel, startChaosModel } from "./model.ts";
import { mixSeed, Rng } from "./rng.ts";
import {
  procFigures,
  readMetrics,
  readStatus,
  ROUTES,
  startWorkerProcess,
  type WorkerMetricsBook,
  type WorkerProcess,
} from "./worker_process.ts";

export type { Invariant, RequestRun };

/** Options of {@linkcode runChaos}. */
export interface ChaosOptions {
  /** Seed of the plan, the per-request draws and the outage schedule. */
  seed: number;
  /** Requests to send (after the warm-up). */
  requests: number;
  /** Stop sending after this long even if `requests` are not all sent. */
  durationMs?: number;
  /** Requests in flight at once. @default 16 */
  concurrency?: number;
  /** Ingredients of the mix. @default every one */
  ingredients?: readonly Ingredient[];
  /** Autoscaler outages to mix in. @default ["503", "down", "slow"] */
  outages?: readonly OutageKind[];
  /** Delay of a slow autoscaler (above 10 s: past the worker's per-try
   * timeout). @default 400 */
  slowAutoscalerMs?: number;
  /** `EDGEWORKER_MAX_BODY_BYTES`; undefined: unlimited. @default 1 MiB */
  maxBodyBytes?: number | undefined;
  /** The worker's `timeouts.firstByte` (seconds). @default 4 */
  firstByteTimeoutSeconds?: number;
  /** Longest wait for the books to balance after the load. @default 20000 */
  settleMs?: number;
  /** RSS growth allowed over the warm baseline. @default 160 MiB */
  rssSlackBytes?: number;
  /** Descriptors allowed over the warm baseline (keep-alive pools to the
   * model and from clients may grow past the warm-up's). @default 2 ×
   * concurrency + 16 */
  fdSlack?: number;
  /** Hard deadline of one request (a worker that never answers).
   * @default 30000 */
  requestDeadlineMs?: number;
  /** Stops the run (the worker is killed, the run throws). */
  signal?: AbortSignal;
  /** Progress lines (none by default). */
  log?: (line: string) => void;
}

/** The figures of a finished run. */
export interface ChaosReport {
  seed: number;
  options:
    & Required<Omit<ChaosOptions, "durationMs" | "log" | "maxBodyBytes">>
    & {
      durationMs?: number;
      maxBodyBytes: number | undefined;
    };
  ok: boolean;
  invariants: Invariant[];
  runs: RequestRun[];
  sendMs: number;
  totalMs: number;
  outages: Record<string, number>;
  worker: WorkerMetricsBook;
  /** `num_requests_recieved` of the last accepted status. */
  received: number;
  /** Delete statuses the autoscaler accepted, by status. */
  reported: Record<DeleteStatus, number>;
  rss: { baseline: number; after: number };
  fds: { baseline: number; after: number };
  /** Tail of the worker's output when something failed. */
  workerOutput: string;
}

const MASTER_TOKEN = "chaos-master-token-4f7c1d";
const WARMUP = 40;
const PROBES = 20;
const PROBE_TOKENS = 3;

/** A plain request of known workload, sent after the chaos. */
const PROBE: Ingredient = {
  name: "probe",
  group: "normal",
  weight: 0,
  about: `JSON answer, max_tokens ${PROBE_TOKENS}, after the chaos`,
  run: async (ctx) => {
    ctx.workload = PROBE_TOKENS;
    const payload = { chaos: "ok", idx: ctx.idx, max_tokens: PROBE_TOKENS };
    try {
      const res = await send(ctx, envelopeText(ctx, payload));
      const { text } = await readBody(res);
      const ok = res.status === 200 && relayed(res);
      return {
        record: ["Success"],
        seen: String(res.status),
        problems: ok
          ? []
          : [`probe answered ${res.status}: ${text.slice(0, 120)}`],
      };
    } catch (e) {
      return { record: "any", seen: "fetch failed", problems: [String(e)] };
    }
  },
};

/**
 * A request whose workload is Number.MAX_VALUE: two in one report window
 * add up to Infinity. Sent in a pair before the probes when `huge_numbers`
 * is in the mix, so the probes show whether the reported sums survive.
 */
const HUGE_PAIR: Ingredient = {
  name: "huge_pair",
  group: "input",
  weight: 0,
  about: "two requests of max_tokens 1.7976931348623157e308 at once",
  run: async (ctx) => {
    ctx.saneWorkload = false;
    const payload = { chaos: "ok", idx: ctx.idx, max_tokens: Number.MAX_VALUE };
    try {
      const res = await send(ctx, envelopeText(ctx, payload));
      const { text } = await readBody(res);
      if (relayed(res) && res.status === 200) {
        return { record: ["Success"], seen: "200 relayed", problems: [] };
      }
      // Refusing such a workload is fine too, with a JSON 4xx.
      const problems = relayed(res) || res.status >= 500
        ? [`answered ${res.status}: ${text.slice(0, 120)}`]
        : checkWorkerAnswer(res.status, res.headers.get("content-type"), text, [
          res.status,
        ]);
      return { record: "any", seen: String(res.status), problems };
    } catch (e) {
      return { record: "any", seen: "fetch failed", problems: [String(e)] };
    }
  },
};

/** Runs the chaos described by `options` and returns its books. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const o = {
    concurrency: 16,
    ingredients: INGREDIENTS,
    outages: ["503", "down", "slow"] as OutageKind[],
    slowAutoscalerMs: 400,
    maxBodyBytes: 1024 * 1024 as number | undefined,
    firstByteTimeoutSeconds: 4,
    settleMs: 20_000,
    rssSlackBytes: 160 * 1024 * 1024,
    fdSlack: 2 * (options.concurrency ?? 16) + 16,
    requestDeadlineMs: 30_000,
    signal: new AbortController().signal,
    ...options,
  };
  if (o.ingredients.length === 0) {
    throw new RangeError("no ingredient selected");
  }
  const log = o.log ?? (() => {});
  const t0 = performance.now();
  const model = startChaosModel();
  const as = await Autoscaler.start();
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-chaos-" });
  let worker: WorkerProcess | undefined;
  try {
    worker = await startWorkerProcess(dir, {
      modelUrl: model.url,
      reportAddr: as.url,
      maxBodyBytes: o.maxBodyBytes,
      firstByteTimeoutSeconds: o.firstByteTimeoutSeconds,
      masterToken: MASTER_TOKEN,
    });
    as.setWorkerUrl(worker.base);
    log(`worker ready at ${worker.base} (pid ${worker.pid})`);
    const w = worker;
    const kill = () => void w.stop(0).catch(() => {});
    o.signal.addEventListener("abort", kill, { once: true });
    try {
      const report = await drive(o, model, as, worker, log, t0);
      if (o.signal.aborted) throw new Error("chaos run stopped");
      return report;
    } finally {
      o.signal.removeEventListener("abort", kill);
    }
  } finally {
    await worker?.stop(1000).catch(() => {});
    await model.close();
    await as.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

type Resolved =
  & Required<
    Omit<ChaosOptions, "durationMs" | "log" | "maxBodyBytes">
  >
  & {
    durationMs?: number;
    maxBodyBytes: number | undefined;
  };

async function drive(
  o: Resolved,
  model: ChaosModel,
  as: Autoscaler,
  worker: WorkerProcess,
  log: (line: string) => void,
  t0: number,
): Promise<ChaosReport> {
  // A real `/route/` answer: its signature covers only the worker URL, so
  // every request reuses it with its own request_idx.
  const route = await (await fetch(`${as.url}/route/`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ endpoint: "chaos", api_key: "chaos", cost: 100 }),
  })).json() as Record<string, unknown>;
  let reqnum = Number(route.reqnum);
  const runs: RequestRun[] = [];
  const byName = new Map(INGREDIENTS.map((i) => [i.name, i]));

  const runOne = async (
    idx: number,
    ingredient: Ingredient,
    routePath: string,
  ): Promise<RequestRun> => {
    // A clearable timer (AbortSignal.timeout would outlive the run).
    const hard = new AbortController();
    const timer = setTimeout(() => hard.abort(), o.requestDeadlineMs);
    const ctx: RequestCtx = {
      idx,
      rng: new Rng(mixSeed(o.seed, idx)),
      base: worker.base,
      port: worker.port,
      route: routePath,
      maxBodyBytes: o.maxBodyBytes,
      firstByteTimeoutMs: o.firstByteTimeoutSeconds * 1000,
      auth: (over = {}) => ({
        ...route,
        __request_id: `chaos-${o.seed}-${idx}`,
        reqnum: ++reqnum,
        request_idx: idx,
        ...over,
      }),
      signUrl: (url) => as.sign(urlSignatureMessage(url)),
      signal: hard.signal,
    };
    let verdict: Verdict;
    try {
      verdict = await ingredient.run(ctx);
    } catch (e) {
      verdict = { record: "any", seen: "harness error", problems: [String(e)] };
    } finally {
      clearTimeout(timer);
    }
    if (ctx.signal.aborted) {
      verdict = {
        record: "any",
        seen: "no answer",
        problems: [
          `no answer within ${
            o.requestDeadlineMs / 1000
          } s (the client gave up)`,
        ],
      };
    }
    const run: RequestRun = {
      idx,
      ingredient: ingredient.name,
      route: routePath,
      verdict,
      saneWorkload: ctx.saneWorkload !== false,
      reported: [],
      helperReported: [],
      ...(ctx.workload !== undefined ? { workload: ctx.workload } : {}),
    };
    runs.push(run);
    return run;
  };

  // Warm-up: plain requests, then the baseline figures.
  const warm = [byName.get("ok")!, byName.get("stream")!];
  // As many at once as the chaos, so the keep-alive pools are grown.
  await pool(
    WARMUP,
    o.concurrency,
    (i) => runOne(1 + i, warm[i % 2], ROUTES.chat),
  );
  await delay(300);
  const base = await procFigures(worker.pid);
  log(`baseline rss ${mb(base.rssBytes)} MB, ${base.fds} fds`);

  // The chaos: the plan comes from the seed alone.
  const planRng = new Rng(mixSeed(o.seed, 0xc4a05));
  const weights: Record<string, number> = {};
  for (const i of o.ingredients) weights[i.name] = i.weight;
  const routeWeights = {
    [ROUTES.chat]: 7,
    [ROUTES.slots]: 2,
    [ROUTES.fifo]: 1,
  };
  const outageStop = new AbortController();
  const outages = as.chaos(
    o.outages,
    new Rng(mixSeed(o.seed, 0x07a6e)),
    o.slowAutoscalerMs,
    outageStop.signal,
  );
  const sendStart = performance.now();
  const deadline = o.durationMs === undefined
    ? Infinity
    : sendStart + o.durationMs;
  let sent = 0;
  const progress = setInterval(() => {
    log(
      `sent ${sent}/${o.requests} in ${
        ((performance.now() - sendStart) / 1000).toFixed(0)
      } s`,
    );
  }, 5000);
  try {
    await pool(o.requests, o.concurrency, async (i) => {
      if (performance.now() > deadline || o.signal.aborted) return;
      const ingredient = byName.get(planRng.weighted(weights))!;
      const routePath = ingredient.route ?? planRng.weighted(routeWeights);
      sent++;
      await runOne(WARMUP + 1 + i, ingredient, routePath);
    });
  } finally {
    clearInterval(progress);
    outageStop.abort();
    await outages;
  }
  const sendMs = performance.now() - sendStart;
  log(
    `sent ${sent} chaos requests in ${(sendMs / 1000).toFixed(1)} s; settling`,
  );

  // Settle: every expected report arrived, nothing in flight at the worker
  // and at the model, or the settle time is over.
  const expected = runs.filter((r) => mustReport(r));
  const settleEnd = performance.now() + o.settleMs;
  for (;;) {
    const seen = new Set(
      deleteItems(as.acceptedDeletes()).map((d) => d.request_idx),
    );
    const m = await readMetrics(worker.base).catch(() => undefined);
    const open = [...model.calls.values()].some((c) => c.end === "open");
    const done = expected.every((r) => seen.has(r.idx)) && m !== undefined &&
      m.inFlight === 0 && m.queued === 0 && !open;
    if (done || performance.now() > settleEnd) break;
    await delay(200);
  }
  await quiet(as, worker.base, Math.max(settleEnd, performance.now() + 8000));

  if (o.ingredients.some((i) => i.name === "huge_numbers")) {
    await Promise.all(
      [0, 1].map((k) => runOne(2_000_000 + k, HUGE_PAIR, ROUTES.chat)),
    );
    await quiet(as, worker.base, performance.now() + 8000);
  }

  // A normal request still answered; the reported sums still add up.
  const mark = as.acceptedStatus().length;
  const probeRuns: Verdict[] = [];
  for (let i = 0; i < PROBES; i++) {
    const idx = 1_000_000 + i;
    const r = await runOne(idx, PROBE, ROUTES.chat);
    probeRuns.push(r.verdict);
  }
  const probeWant = PROBES * PROBE_TOKENS;
  const probeEnd = performance.now() + 8000;
  while (performance.now() < probeEnd) {
    if (sumAfter(as.acceptedStatus(), mark, "cur_perf") >= probeWant) break;
    await delay(100);
  }
  await quiet(as, worker.base, performance.now() + 8000);
  await delay(300);

  const after = await procFigures(worker.pid);
  const metrics = await readMetrics(worker.base);
  const status = await readStatus(worker.base);
  const items = deleteItems(as.acceptedDeletes());
  const statuses = as.acceptedStatus();
  const exit = await worker.stop(10_000);
  // SIGTERM cancels what is left and flushes the last reports.
  const finalIdx = new Set(
    deleteItems(as.acceptedDeletes()).map((d) => d.request_idx),
  );

  const { invariants: inv, reported, received } = judge({
    runs,
    items,
    finalIdx,
    statuses,
    mark,
    probeRuns,
    probes: PROBES,
    probeTokens: PROBE_TOKENS,
    metrics,
    status,
    calls: [...model.calls.values()],
    base,
    after,
    exit,
    nonJson: worker.nonJson,
    masterToken: MASTER_TOKEN,
    rssSlackBytes: o.rssSlackBytes,
    fdSlack: o.fdSlack,
  });

  const outageCounts: Record<string, number> = {};
  for (const x of as.outages) {
    outageCounts[x.kind] = (outageCounts[x.kind] ?? 0) + 1;
  }
  const ok = inv.every((i) => i.ok || i.soft);
  return {
    seed: o.seed,
    options: o,
    ok,
    invariants: inv,
    runs,
    sendMs,
    totalMs: performance.now() - t0,
    outages: outageCounts,
    worker: metrics,
    received,
    reported,
    rss: { baseline: base.rssBytes, after: after.rssBytes },
    fds: { baseline: base.fds, after: after.fds },
    workerOutput: ok ? "" : worker.output().split("\n").slice(-40).join("\n"),
  };
}

/** Runs `fn(0..n-1)` with at most `concurrency` at once. */
async function pool(
  n: number,
  concurrency: number,
  fn: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, lane));
}

/**
 * Waits until the reports are quiet: no status report for 2.5 s (the
 * reporter sends one within a 1 s tick of any change) and the worker's last
 * built status is the one the autoscaler accepted last, so every change so
 * far is in an accepted report.
 */
async function quiet(
  as: Autoscaler,
  base: string,
  until: number,
): Promise<void> {
  let n = as.allStatus().length;
  let since = performance.now();
  while (performance.now() < until) {
    await delay(100);
    const now = as.allStatus().length;
    if (now !== n) {
      n = now;
      since = performance.now();
    } else if (performance.now() - since > 2500) {
      const last = as.acceptedStatus().at(-1)?.body as WorkerStatus | undefined;
      const built = (await readStatus(base).catch(() => undefined))?.json
        .last_report as WorkerStatus | null | undefined;
      const same = last !== undefined && built != null &&
        ([
          "cur_perf",
          "new_load",
          "rej_load",
          "cur_load",
          "num_requests_recieved",
        ] as const)
          .every((k) => built[k] === last[k]);
      if (same) return;
      since = performance.now();
    }
  }
}

function sumAfter(
  records: readonly Recorded[],
  from: number,
  field: "cur_perf" | "new_load" | "rej_load",
): number {
  return records.slice(from).reduce(
    (s, r) => s + (r.body as WorkerStatus)[field],
    0,
  );
}

function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}
