/**
 * `deno task bench [--quick] [--json PATH] [--rounds N] [--duration S]
 * [--loadgen wrk|deno]`: what edgeworker costs against the least a
 * forwarding proxy can do, on 127.0.0.1 only, bounded in count and time.
 *
 * Four processes in front of one fast upstream (its own process): direct
 * (the upstream itself), the minimal proxy (`minimal_proxy.ts`), edgeworker
 * with RSA-signed envelopes and edgeworker `UNSECURED=true`. Every figure is
 * taken in rounds that visit the four in turn (A B C D A B C D ...) so that
 * drift of a shared machine hits all alike; the table shows medians over
 * the rounds. Load comes from `wrk` (or a Deno load generator when it is
 * absent) and SSE from a Deno load generator, each its own process. CPU is
 * read from `/proc/<pid>/stat` of each deno process around each run, memory
 * from `/proc/<pid>/status`. The signed worker is also started as a template
 * starts it, before its model (`ready_time.ts`): how long it takes to be
 * ready once the model's log says it loaded, less its startup benchmark.
 * Prints a table and the targets; writes
 * JSON with `--json`. Exits 1 when any request failed.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { generateKeys, signedAuth } from "../helpers/signing.ts";
import type { HttpResult, Job, SseResult } from "./loadgen.ts";
import { clockTicks, cpuTicks, memoryOf } from "./proc.ts";
import {
  type Goal,
  goals,
  goalTable,
  table,
  type TargetFigures,
} from "./report.ts";
import { median } from "./stats.ts";
import {
  add,
  delta,
  meansUs,
  none,
  type OwnFigures,
  ownFigures,
} from "./own_overhead.ts";
import {
  startEdgeworker,
  startMinimalProxy,
  startUpstream,
  type Target,
} from "./targets.ts";
import { haveWrk, runWrk } from "./wrk.ts";
import { type ReadyTime, timeToReady } from "./ready_time.ts";

/** How much the bench does. */
interface Settings {
  quick: boolean;
  rounds: number;
  /** Rounds of SSE runs (each takes ~0.5 s of streaming at the least). */
  sseRounds: number;
  /** Seconds of each throughput run. */
  durationS: number;
  warmupS: number;
  concurrencies: number[];
  /** Stream counts of the SSE runs (100 chunks 5 ms apart). */
  sseStreams: number[];
  /** Concurrent slow streams for the peak-memory figure. */
  slowStreams: number;
  /** Spawns timed for the startup figure (median). */
  startupTrials: number;
  /** Starts timed from the model's load line to ready (median). */
  readyTrials: number;
  loadgen: "wrk" | "deno";
}

const { values: opts } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    json: { type: "string" },
    rounds: { type: "string" },
    duration: { type: "string" },
    loadgen: { type: "string" },
  },
});

const quick = opts.quick!;
const settings: Settings = {
  quick,
  rounds: Number(opts.rounds ?? (quick ? 2 : 3)),
  sseRounds: 0,
  durationS: Number(opts.duration ?? (quick ? 1 : 5)),
  warmupS: quick ? 1 : 2,
  concurrencies: quick ? [1, 32] : [1, 32, 256],
  sseStreams: quick ? [64] : [64, 256],
  slowStreams: quick ? 100 : 1000,
  startupTrials: quick ? 1 : 5,
  readyTrials: quick ? 1 : 3,
  loadgen: (opts.loadgen as "wrk" | "deno" | undefined) ??
    (await haveWrk() ? "wrk" : "deno"),
};
settings.sseRounds = quick ? 1 : settings.rounds;
/** The SSE chunks of the SSE runs and of the slow streams. */
const SSE_BODY = { chunks: 100, gap_ms: 5 };
const SLOW_BODY = { chunks: quick ? 10 : 20, gap_ms: 100 };
/** A short stream that opens and warms each connection before an SSE run. */
const WARM_BODY = { chunks: 2, gap_ms: 1 };
const PAYLOAD = { prompt: "hello", max_tokens: 16 };
const LOADGEN = new URL("./loadgen.ts", import.meta.url).pathname;
const MB = 1024 * 1024;

const scratch = await Deno.makeTempDir({ prefix: "edgeworker-bench-" });
const hz = await clockTicks();
const keys = await generateKeys();

/** A process under test and what the bench posts to it. */
interface Subject {
  target: Target;
  /** Body for `/echo` and `/stream` (the bare payload for direct). */
  body: (payload: unknown) => string;
  figures: Raw;
}

/** Per-round figures, reduced to medians at the end. */
interface Raw {
  http: Record<
    number,
    { rps: number[]; p50: number[]; p99: number[]; cpuS: number; reqs: number }
  >;
  sse: Record<number, SseResult[]>;
  errors: number;
  idle: number;
  afterLoad: number;
  slowMax: number;
  peak: number;
  startup: number[];
  /** edgeworker (signed) only: `ready_time.ts` trials. */
  ready: ReadyTime[];
  /** edgeworker only: its own /metrics overhead over the /echo runs, by c. */
  own: Record<number, OwnFigures>;
}

function emptyRaw(): Raw {
  return {
    http: Object.fromEntries(
      settings.concurrencies.map((c) => [c, {
        rps: [],
        p50: [],
        p99: [],
        cpuS: 0,
        reqs: 0,
      }]),
    ),
    sse: Object.fromEntries(settings.sseStreams.map((s) => [s, []])),
    errors: 0,
    idle: NaN,
    afterLoad: NaN,
    slowMax: NaN,
    peak: NaN,
    startup: [],
    ready: [],
    own: Object.fromEntries(settings.concurrencies.map((c) => [c, none()])),
  };
}

async function envelopeBody(url: string, payload: unknown): Promise<string> {
  const auth_data = await signedAuth(keys.privateKey, url, {
    endpoint: "bench",
  });
  return JSON.stringify({ auth_data, payload });
}

/** A subject whose requests are envelopes signed for its URL. */
async function enveloped(target: Target): Promise<Subject> {
  const bodies = new Map<unknown, string>();
  for (const p of [PAYLOAD, SSE_BODY, SLOW_BODY, WARM_BODY]) {
    bodies.set(p, await envelopeBody(target.url, p));
  }
  return { target, body: (p) => bodies.get(p)!, figures: emptyRaw() };
}

/** Runs the Deno load generator in its own process. */
async function loadgen<T>(job: Job): Promise<T> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-config", LOADGEN, JSON.stringify(job)],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`load generator failed (${out.code})`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

function postLoad(
  url: string,
  body: string,
  concurrency: number,
  seconds: number,
): Promise<HttpResult> {
  return settings.loadgen === "wrk"
    ? runWrk(url, body, concurrency, seconds, scratch)
    : loadgen<HttpResult>({
      mode: "http",
      url,
      body,
      concurrency,
      durationMs: seconds * 1000,
    });
}

/** One throughput run at `c`, with the subject's CPU read around it. */
async function httpRun(s: Subject, c: number): Promise<void> {
  const isWorker = s.target.name === "edgeworker" ||
    s.target.name === "UNSECURED";
  const own = isWorker ? await ownFigures(s.target.url, "/echo") : undefined;
  const before = await cpuTicks(s.target.pid);
  const r = await postLoad(
    `${s.target.url}/echo`,
    s.body(PAYLOAD),
    c,
    settings.durationS,
  );
  const after = await cpuTicks(s.target.pid);
  const h = s.figures.http[c];
  h.rps.push(r.requests / r.seconds);
  h.p50.push(r.p50Ms);
  h.p99.push(r.p99Ms);
  h.cpuS += (after - before) / hz;
  h.reqs += r.requests;
  s.figures.errors += r.non2xx + r.transportErrors;
  if (own) {
    add(s.figures.own[c], delta(own, await ownFigures(s.target.url, "/echo")));
  }
}

/** The worker's own overhead (its /metrics) beside the bench's latency. */
function ownTable(subjects: Subject[], rows: TargetFigures[]): string {
  const [direct, minimal] = rows;
  const us = (n: number) => Number.isFinite(n) ? n.toFixed(0) : "-";
  const lines = [
    "Worker's own /metrics (/echo, mean µs per request: before send + first byte = sum)" +
    ` vs the bench's c=1 p50 latency minus minimal proxy / direct:`,
  ];
  subjects.forEach((s, i) => {
    if (i < 2) return;
    for (const c of settings.concurrencies) {
      const [b, f, sum] = meansUs(s.figures.own[c]);
      const bench = c === 1
        ? `   | bench: ${us((rows[i].p50Ms - minimal.p50Ms) * 1000)} / ${
          us((rows[i].p50Ms - direct.p50Ms) * 1000)
        }`
        : "";
      lines.push(
        `  ${s.target.name.padEnd(10)} c=${String(c).padEnd(4)} ${us(b)} + ${
          us(f)
        } = ${us(sum)}${bench}`,
      );
    }
  });
  return lines.join("\n");
}

async function sseRun(s: Subject, streams: number): Promise<void> {
  const r = await loadgen<SseResult>({
    mode: "sse",
    url: `${s.target.url}/stream`,
    body: s.body(SSE_BODY),
    warmBody: s.body(WARM_BODY),
    streams,
  });
  s.figures.sse[streams].push(r);
  s.figures.errors += r.non2xx + r.transportErrors + r.incomplete;
}

/** Slow streams at once; VmRSS sampled while they run, VmHWM after. */
async function slowRun(s: Subject): Promise<void> {
  let max = 0;
  let running = true;
  const sampler = (async () => {
    while (running) {
      max = Math.max(max, (await memoryOf(s.target.pid)).rss);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const r = await loadgen<SseResult>({
    mode: "sse",
    url: `${s.target.url}/stream`,
    body: s.body(SLOW_BODY),
    warmBody: s.body(WARM_BODY),
    streams: settings.slowStreams,
  });
  running = false;
  await sampler;
  s.figures.slowMax = max;
  s.figures.peak = (await memoryOf(s.target.pid)).hwm;
  s.figures.errors += r.non2xx + r.transportErrors + r.incomplete;
}

/** Quiet seconds before a memory reading, the same for every process. */
const SETTLE_MS = 3000;
function settle(): Promise<void> {
  return new Promise((r) => setTimeout(r, SETTLE_MS));
}

/** Extra spawns for the startup figure (the kept process is one trial). */
async function startupTrials(
  start: () => Promise<Target>,
  n: number,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = await start();
    out.push(t.startupMs);
    await t.stop();
  }
  return out;
}

function figuresOf(s: Subject): TargetFigures {
  const f = s.figures;
  const byC = <T>(fn: (c: number) => T) =>
    Object.fromEntries(settings.concurrencies.map((c) => [String(c), fn(c)]));
  const one = f.http[1];
  return {
    name: s.target.name,
    rps: byC((c) => median(f.http[c].rps)),
    p50Ms: median(one.p50),
    p99Ms: median(one.p99),
    cpuUsPerReq: byC((c) => f.http[c].cpuS / f.http[c].reqs * 1e6),
    sse: Object.fromEntries(settings.sseStreams.map((n) => {
      const runs = f.sse[n];
      return [String(n), {
        ttfbP50: median(runs.map((r) => r.ttfbP50Ms)),
        ttfbP99: median(runs.map((r) => r.ttfbP99Ms)),
        totalP50: median(runs.map((r) => r.totalP50Ms)),
        totalP99: median(runs.map((r) => r.totalP99Ms)),
      }];
    })),
    rssIdleMb: f.idle / MB,
    rssAfterLoadMb: f.afterLoad / MB,
    rssSlowStreamsMb: f.slowMax / MB,
    peakMb: f.peak / MB,
    startupMs: median(f.startup),
    ...(f.ready.length
      ? {
        ready: {
          pastSignalMs: median(f.ready.map((r) => r.pastSignalMs)),
          benchmarkMs: median(f.ready.map((r) => r.benchmarkMs)),
        },
      }
      : {}),
    errors: f.errors,
  };
}

async function machine() {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  const loadavg = (await Deno.readTextFile("/proc/loadavg")).split(" ")
    .slice(0, 3).join(" ");
  return {
    cores: navigator.hardwareConcurrency,
    cpu: cpuinfo.match(/model name\s*:\s*(.*)/)?.[1] ?? "?",
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    loadavg,
  };
}

const started = performance.now();
const before = await machine();
console.log(
  `edgeworker bench${quick ? " --quick" : ""}: ${settings.rounds} rounds × ` +
    `${settings.durationS} s per run (${settings.sseRounds} of SSE), ` +
    `load by ${settings.loadgen}, ` +
    `${before.cores} cores (${before.cpu}), deno ${before.deno}, ` +
    `load average ${before.loadavg}`,
);

const upstream = await startUpstream();
const subjects: Subject[] = [];
const starters: [Target["name"], () => Promise<Target>][] = [
  ["minimal proxy", () => startMinimalProxy(upstream.url)],
  [
    "edgeworker",
    () => startEdgeworker("edgeworker", upstream.url, keys.publicPem, false),
  ],
  [
    "UNSECURED",
    () => startEdgeworker("UNSECURED", upstream.url, keys.publicPem, true),
  ],
];
let exitCode = 0;
try {
  const direct: Subject = {
    target: { ...upstream, name: "direct" },
    body: (p) => JSON.stringify(p),
    figures: emptyRaw(),
  };
  direct.figures.startup.push(upstream.startupMs);
  subjects.push(direct);
  for (const [, start] of starters) {
    const extra = await startupTrials(start, settings.startupTrials - 1);
    const s = await enveloped(await start());
    s.figures.startup.push(...extra, s.target.startupMs);
    subjects.push(s);
  }
  const signed = subjects.find((s) => s.target.name === "edgeworker")!;
  for (let i = 0; i < settings.readyTrials; i++) {
    signed.figures.ready.push(await timeToReady(upstream.url, keys.publicPem));
  }
  // Read once every process had the same few quiet seconds (edgeworker
  // gives start-up's garbage back on its first quiet look, 2 s in).
  await settle();
  for (const s of subjects) s.figures.idle = (await memoryOf(s.target.pid)).rss;

  // Warm-up (JIT, connection pools), not counted.
  for (const s of subjects) {
    await postLoad(
      `${s.target.url}/echo`,
      s.body(PAYLOAD),
      32,
      settings.warmupS,
    );
  }
  for (let round = 0; round < settings.rounds; round++) {
    for (const c of settings.concurrencies) {
      for (const s of subjects) await httpRun(s, c);
    }
    if (round >= settings.sseRounds) continue;
    for (const n of settings.sseStreams) {
      for (const s of subjects) await sseRun(s, n);
    }
  }
  await settle();
  for (const s of subjects) {
    s.figures.afterLoad = (await memoryOf(s.target.pid)).rss;
  }
  for (const s of subjects) await slowRun(s);

  const rows = subjects.map(figuresOf);
  const [directRow, minimalRow, signedRow] = rows;
  const c = "32";
  const streams = String(settings.sseStreams.at(-1));
  const goalList: Goal[] = goals(
    directRow,
    minimalRow,
    signedRow,
    c,
    streams,
    settings.slowStreams,
  );
  const after = await machine();
  const errors = rows.reduce((n, r) => n + r.errors, 0);
  const seconds = (performance.now() - started) / 1000;

  console.log("\n" + table(rows, settings.slowStreams));
  console.log(
    `\nTargets (edgeworker with signatures checked${
      quick ? "; --quick: smaller counts than the targets name" : ""
    }):\n` + goalTable(goalList),
  );
  console.log("\n" + ownTable(subjects, rows));
  console.log(
    `\nerrors: ${errors}; ${
      seconds.toFixed(1)
    } s; load average before ${before.loadavg}, after ${after.loadavg}`,
  );
  if (opts.json) {
    await Deno.writeTextFile(
      opts.json,
      JSON.stringify(
        {
          settings,
          machine: { ...before, loadavgAfter: after.loadavg },
          seconds,
          errors,
          figures: rows,
          goals: goalList,
          rounds: Object.fromEntries(
            subjects.map((s) => [s.target.name, s.figures]),
          ),
        },
        null,
        2,
      ) + "\n",
    );
  }
  if (errors > 0) exitCode = 1;
} finally {
  for (const s of subjects.slice(1)) await s.target.stop();
  await upstream.stop();
  await Deno.remove(scratch, { recursive: true });
}
Deno.exit(exitCode);
