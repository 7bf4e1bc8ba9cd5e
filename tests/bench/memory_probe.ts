/**
 * One process's memory through a scenario, for trying a memory change
 * (README "Benchmark", "Memory"): the bench's upstream and one target, its
 * RSS at idle, after `--load` seconds of c=32 POSTs, highest while
 * `--streams` slow SSE streams are open and `--quiet` ms after them, with the
 * CPU µs per request of the load. Prints one JSON line.
 *
 * ```sh
 * deno run -A tests/bench/memory_probe.ts --load 6 --streams 1000
 * deno run -A tests/bench/memory_probe.ts --target minimal --streams 1000
 * deno run -A tests/bench/memory_probe.ts --deno-args=--v8-flags=--max-semi-space-size=1
 * deno run -A tests/bench/memory_probe.ts --no-trim --load 6
 * ```
 *
 * `--target edgeworker|unsecured|minimal|native|js|byob|byob1k`
 * (edgeworker: signed envelopes; the last four: `relay_variants.ts`);
 * `--deno-args` (space separated) go before the target's script; `--env
 * K=V,...` on top of the bench's; `--no-trim` starts the worker without
 * `DENO_USR2_MEMORY_TRIM` (it never gives memory back); `--chunks`/`--gap`
 * shape the slow streams (20 × 100 ms); `--quiet` ms pass before each
 * reading after idle, load and streams.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { generateKeys, signedAuth } from "../helpers/signing.ts";
import type { HttpResult, Job, SseResult } from "./loadgen.ts";
import { clockTicks, cpuTicks } from "./proc.ts";
import {
  startEdgeworker,
  startMinimalProxy,
  startRelayVariant,
  startUpstream,
  type Target,
} from "./targets.ts";

const opts = parseArgs({
  args: Deno.args,
  options: {
    target: { type: "string", default: "edgeworker" },
    "deno-args": { type: "string", default: "" },
    env: { type: "string", default: "" },
    load: { type: "string", default: "0" },
    streams: { type: "string", default: "0" },
    chunks: { type: "string", default: "20" },
    gap: { type: "string", default: "100" },
    quiet: { type: "string", default: "3000" },
    "no-trim": { type: "boolean", default: false },
  },
}).values;

const LOADGEN = new URL("./loadgen.ts", import.meta.url).pathname;
const denoArgs = opts["deno-args"]!.split(" ").filter(Boolean);
const env: Record<string, string | undefined> = Object.fromEntries(
  opts.env!.split(",").filter(Boolean).map((kv) => {
    const at = kv.indexOf("=");
    return [kv.slice(0, at), kv.slice(at + 1)];
  }),
);
if (opts["no-trim"]) env.DENO_USR2_MEMORY_TRIM = undefined;

/** VmRSS, VmHWM, RssAnon and RssFile of `pid`, MB. */
async function memory(pid: number): Promise<Record<string, number>> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const mb = (name: string) =>
    Math.round(
      Number(status.match(new RegExp(`${name}:\\s+(\\d+) kB`))?.[1]) * 10 /
        1024,
    ) / 10;
  return {
    rss: mb("VmRSS"),
    hwm: mb("VmHWM"),
    anon: mb("RssAnon"),
    file: mb("RssFile"),
  };
}

async function loadgen<T>(job: Job): Promise<T> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-config", LOADGEN, JSON.stringify(job)],
    stdout: "piped",
  }).output();
  if (!out.success) throw new Error(`load generator failed (${out.code})`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const keys = await generateKeys();
const upstream = await startUpstream();
let target: Target | undefined;
try {
  if (opts.target === "minimal") {
    target = await startMinimalProxy(upstream.url, denoArgs);
  } else if (["native", "js", "byob", "byob1k"].includes(opts.target!)) {
    target = await startRelayVariant(upstream.url, opts.target!);
  } else {
    target = await startEdgeworker(
      opts.target!,
      upstream.url,
      keys.publicPem,
      opts.target === "unsecured",
      denoArgs,
      env,
    );
  }
  const t = target;
  const auth = await signedAuth(keys.privateKey, t.url, { endpoint: "bench" });
  const body = (payload: unknown) =>
    JSON.stringify({ auth_data: auth, payload });
  const out: Record<string, unknown> = { startupMs: Math.round(t.startupMs) };
  await sleep(Number(opts.quiet));
  out.idle = await memory(t.pid);
  if (Number(opts.load) > 0) {
    const hz = await clockTicks();
    const before = await cpuTicks(t.pid);
    const r = await loadgen<HttpResult>({
      mode: "http",
      url: `${t.url}/echo`,
      body: body({ prompt: "hello", max_tokens: 16 }),
      concurrency: 32,
      durationMs: Number(opts.load) * 1000,
    });
    const cpu = (await cpuTicks(t.pid)) - before;
    out.load = {
      requests: r.requests,
      cpuUsPerRequest: Math.round(cpu / hz * 1e6 / r.requests),
      errors: r.non2xx + r.transportErrors,
    };
    out.afterLoad = await memory(t.pid);
    await sleep(Number(opts.quiet));
    out.afterLoadQuiet = await memory(t.pid);
  }
  if (Number(opts.streams) > 0) {
    let max = 0;
    let running = true;
    const sampler = (async () => {
      while (running) {
        max = Math.max(max, (await memory(t.pid)).rss);
        await sleep(50);
      }
    })();
    const r = await loadgen<SseResult>({
      mode: "sse",
      url: `${t.url}/stream`,
      body: body({ chunks: Number(opts.chunks), gap_ms: Number(opts.gap) }),
      warmBody: body({ chunks: 2, gap_ms: 1 }),
      streams: Number(opts.streams),
    });
    running = false;
    await sampler;
    out.streams = {
      maxRss: max,
      totalP50Ms: Math.round(r.totalP50Ms),
      errors: r.non2xx + r.transportErrors + r.incomplete,
    };
    await sleep(Number(opts.quiet));
    out.afterStreamsQuiet = await memory(t.pid);
  }
  console.log(JSON.stringify(out));
} finally {
  await target?.stop();
  await upstream.stop();
}
