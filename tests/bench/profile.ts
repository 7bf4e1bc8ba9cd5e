/**
 * Where a proxy process spends its CPU under the bench's c=32 load:
 *
 *     deno run -A tests/bench/profile.ts [--target edgeworker|UNSECURED|minimal]
 *       [--seconds 10] [--top 25] [--mode v8|perf] [--full] [--load echo|sse]
 *       [--concurrency 32]
 *
 * The target runs as in `run.ts` (its own process, in front of the bench's
 * upstream, signed envelopes for `edgeworker`) while `wrk` (or the Deno
 * load generator) posts at concurrency 32 (`--concurrency`) after a 2 s
 * warm-up; with
 * `--load sse`, rounds of 64 SSE streams of 100 chunks 5 ms apart instead
 * (the per-chunk cost; "requests" then counts chunks).
 *
 * - `v8` (default): the target runs with `--v8-flags=--prof` (V8's tick
 *   sampler, 200 µs, written to a temp log). The ticks of the load window
 *   go through `node --prof-process` (Node is on the machine): self time
 *   of JS functions, V8 builtins and C++ (deno's stripped binary counts as
 *   one shared library), then the JS ticks summed by module (`--full`: the whole report, with
 *   its bottom-up call trees: who calls the heavy builtins). The inspector
 *   is not used: while one is attached, Deno reports and tees every
 *   `fetch` to it, which would be profiled too.
 * - `perf`: the target runs with `--v8-flags=--perf-basic-prof` (JIT code
 *   named in `/tmp/perf-<pid>.map`) and `perf record -g` samples every
 *   thread of it; prints self time by thread and object (kernel, libc,
 *   deno, JIT) and the top symbols (deno's own code shows as addresses).
 *   Needs Linux `perf`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { generateKeys, signedAuth } from "../helpers/signing.ts";
import type { HttpResult } from "./loadgen.ts";
import { clockTicks, cpuTicks } from "./proc.ts";
import {
  startEdgeworker,
  startMinimalProxy,
  startUpstream,
  type Target,
} from "./targets.ts";
import { haveWrk, runWrk } from "./wrk.ts";

const { values: opts } = parseArgs({
  args: Deno.args,
  options: {
    target: { type: "string", default: "edgeworker" },
    seconds: { type: "string", default: "10" },
    top: { type: "string", default: "25" },
    mode: { type: "string", default: "v8" },
    full: { type: "boolean", default: false },
    load: { type: "string", default: "echo" },
    concurrency: { type: "string", default: "32" },
  },
});
const SECONDS = Number(opts.seconds);
const TOP = Number(opts.top);
const CONCURRENCY = Number(opts.concurrency);
const LOADGEN = new URL("./loadgen.ts", import.meta.url).pathname;

/** Where a code object lives, shortened: lib/..., ext:..., npm:... */
function placeOf(url: string): string {
  return url
    .replace(/^file:\/\/.*?\/(lib|tests|dev|workers)\//, "$1/")
    .replace(/^file:\/\/.*\/main\.ts$/, "main.ts")
    .replace(
      /^file:\/\/.*\/registry\.npmjs\.org\/([^/]+)\/[^/]+\/.*$/,
      "npm:$1",
    );
}

/**
 * The `[JavaScript]` rows of a `--prof-process` report summed by where the
 * code lives (a module, "V8 builtins", "regexps", ...), heaviest first.
 */
function byPlace(report: string): [string, number][] {
  const sums = new Map<string, number>();
  const section = report.split(" [JavaScript]:")[1]?.split(" [C++]:")[0] ?? "";
  for (const line of section.split("\n")) {
    const m = line.match(/^\s+(\d+)\s+[\d.]+%\s+[\d.]+%\s+(\w+): (.*)$/);
    if (!m) continue;
    const [, ticks, kind, name] = m;
    const url = name.match(/ ((?:file|ext|npm):\S*?)(?::\d+){1,2}$/)?.[1];
    const place = kind === "Builtin"
      ? "V8 builtins (property access, calls, promises, ...)"
      : kind === "RegExp"
      ? "regexps"
      : url
      ? placeOf(url)
      : kind;
    sums.set(place, (sums.get(place) ?? 0) + Number(ticks));
  }
  return [...sums.entries()].sort((a, b) => b[1] - a[1]);
}

/** Rounds of 64 SSE streams for `seconds`; each chunk counts as a request. */
async function sseLoad(target: Target, seconds: number): Promise<HttpResult> {
  const envelope = async (payload: unknown) =>
    JSON.stringify({
      auth_data: await signedAuth(keys.privateKey, target.url),
      payload,
    });
  const job = {
    mode: "sse",
    url: `${target.url}/stream`,
    body: await envelope({ chunks: 100, gap_ms: 5 }),
    warmBody: await envelope({ chunks: 2, gap_ms: 1 }),
    streams: 64,
  };
  const t0 = performance.now();
  const total: HttpResult = {
    requests: 0,
    seconds: 0,
    p50Ms: NaN,
    p99Ms: NaN,
    non2xx: 0,
    transportErrors: 0,
  };
  while (performance.now() - t0 < seconds * 1000) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-config", LOADGEN, JSON.stringify(job)],
      stdout: "piped",
    }).output();
    const r = JSON.parse(new TextDecoder().decode(out.stdout));
    total.requests += job.streams * 102;
    total.non2xx += r.non2xx;
    total.transportErrors += r.transportErrors + r.incomplete;
  }
  total.seconds = (performance.now() - t0) / 1000;
  return total;
}

async function load(
  target: Target,
  body: string,
  seconds = SECONDS,
): Promise<HttpResult> {
  if (opts.load === "sse") return await sseLoad(target, seconds);
  const url = `${target.url}/echo`;
  if (await haveWrk()) {
    const dir = await Deno.makeTempDir();
    try {
      return await runWrk(url, body, CONCURRENCY, seconds, dir);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--no-config",
      LOADGEN,
      JSON.stringify({
        mode: "http",
        url,
        body,
        concurrency: CONCURRENCY,
        durationMs: seconds * 1000,
      }),
    ],
    stdout: "piped",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const keys = await generateKeys();
const upstream = await startUpstream();
const v8Log = await Deno.makeTempFile({ suffix: ".v8.log" });
const denoArgs = opts.mode === "perf" ? ["--v8-flags=--perf-basic-prof"] : [
  `--v8-flags=--prof,--prof_sampling_interval=200,--no-logfile-per-isolate,--logfile=${v8Log}`,
];
const spawnedAt = performance.now();
const target = opts.target === "minimal"
  ? await startMinimalProxy(upstream.url, denoArgs)
  : await startEdgeworker(
    opts.target!,
    upstream.url,
    keys.publicPem,
    opts.target === "UNSECURED",
    denoArgs,
  );
try {
  const body = JSON.stringify({
    auth_data: await signedAuth(keys.privateKey, target.url),
    payload: { prompt: "hello", max_tokens: 16 },
  });
  // Warm-up: JIT and connection pools, as in run.ts.
  await load(target, body, 2);
  const hz = await clockTicks();
  const before = await cpuTicks(target.pid);
  if (opts.mode === "v8") {
    // V8 writes its log as it goes and closes it at exit: the window of
    // the load (ms since the process started) is kept for --prof-process.
    const from = performance.now() - spawnedAt + 100;
    const r = await load(target, body);
    const to = performance.now() - spawnedAt - 100;
    printLoad(r, (await cpuTicks(target.pid) - before) / hz);
    await target.stop();
    const report = await v8Report(v8Log, from, to);
    console.log(opts.full ? report : trimReport(report, TOP));
    const places = byPlace(report);
    const all = places.reduce((n, [, t]) => n + t, 0);
    console.log("JavaScript ticks by where the code lives:");
    for (const [place, ticks] of places.slice(0, TOP)) {
      console.log(
        `${(ticks / all * 100).toFixed(1).padStart(5)}%  ${
          String(ticks).padStart(6)
        }  ${place}`,
      );
    }
  } else {
    const data = await Deno.makeTempFile({ suffix: ".perf.data" });
    const rec = new Deno.Command("perf", {
      args: [
        "record",
        "-F",
        "999",
        "-g",
        "-p",
        String(target.pid),
        "-o",
        data,
        "--",
        "sleep",
        String(SECONDS),
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const r = await load(target, body);
    await rec.status;
    printLoad(r, (await cpuTicks(target.pid) - before) / hz);
    for (const sort of ["comm,dso", "dso,symbol"]) {
      console.log(`\nperf self time by ${sort}:`);
      console.log(await perfReport(data, sort, TOP));
    }
    await Deno.remove(data);
  }
} finally {
  await target.stop();
  await upstream.stop();
  await Deno.remove(v8Log).catch(() => {});
  if (opts.mode === "perf") {
    await Deno.remove(`/tmp/perf-${target.pid}.map`).catch(() => {});
  }
}

/**
 * `node --prof-process` over the ticks of `[fromMs, toMs]` of a V8 log:
 * JS functions, V8 builtins (named) and C++ (the stripped deno binary as
 * one shared library). Node's tick processor predates some of the code
 * states Deno's V8 writes (`+'`, ...): those are mapped to the plain ones.
 */
async function v8Report(log: string, fromMs: number, toMs: number) {
  const text = await Deno.readTextFile(log);
  await Deno.writeTextFile(log, text.replace(/,([~^+*])'$/gm, ",$1"));
  const out = await new Deno.Command("node", {
    args: [
      "--prof-process",
      `--range=${fromMs.toFixed(0)},${toMs.toFixed(0)}`,
      log,
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout);
}

/** Each section's heading and its first `n` rows; the call trees are long. */
function trimReport(report: string, n: number): string {
  const lines = report.split("\n");
  const kept: string[] = [];
  let rows = 0;
  for (const line of lines) {
    if (line.startsWith(" [Bottom up")) break;
    if (line.startsWith(" [")) rows = 0;
    if (/^\s+\d+\s+[\d.]+%/.test(line) && ++rows > n) continue;
    kept.push(line);
  }
  return kept.join("\n").replace(/\n{3,}/g, "\n\n");
}

/** `perf report` of `data` sorted by `sort`, top `n` lines. */
async function perfReport(data: string, sort: string, n: number) {
  const report = await new Deno.Command("perf", {
    args: [
      "report",
      "-i",
      data,
      "--stdio",
      "--no-children",
      "--sort",
      sort,
      "-g",
      "none",
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(report.stdout).split("\n")
    .filter((l) => l.trim() && !l.startsWith("#"))
    .map((l) => l.replace(/\s+-\s+-\s*$/, "").trimEnd())
    .slice(0, n).join("\n");
}

function printLoad(r: HttpResult, cpuSeconds: number) {
  console.log(
    `${target.name}: ${r.requests} requests at c=${CONCURRENCY} in ${
      r.seconds.toFixed(1)
    } s (${(r.requests / r.seconds).toFixed(0)} req/s, ${
      r.non2xx + r.transportErrors
    } errors), ${(cpuSeconds / r.requests * 1e6).toFixed(0)} CPU µs/request`,
  );
}
