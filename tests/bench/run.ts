/**
 * `deno task bench`: figures for the worker's overhead, on 127.0.0.1 only,
 * bounded in count and time.
 *
 * 1. Small JSON requests straight to a model stand-in vs through the worker
 *    (a `main.ts` subprocess), with signatures checked and with UNSECURED.
 * 2. Time to first byte of a stream, direct vs through the worker.
 * 3. Client disconnect → model call aborted: how long it takes.
 * 4. The worker's resident memory after the load.
 */
import { freePort, waitReady } from "../e2e/_scenario.ts";
import { generateKeys } from "../helpers/signing.ts";
import { startUpstream } from "../helpers/upstream.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const REQUESTS = Number(Deno.env.get("BENCH_REQUESTS") ?? 3000);
const CONCURRENCY = Number(Deno.env.get("BENCH_CONCURRENCY") ?? 32);
const enc = new TextEncoder();

let aborts: number[] = [];
const abortWaiters: ((t: number) => void)[] = [];
// The scripted upstream, scripted as an echo and a 200-chunk stream that
// notes when the worker aborts it.
const model = startUpstream({
  script: ({ path, text, signal }) => {
    if (path === "/stream") {
      let timer: ReturnType<typeof setTimeout> | undefined;
      signal.addEventListener("abort", () => {
        clearTimeout(timer); // the stream is gone: enqueue would throw
        const t = performance.now();
        aborts.push(t);
        abortWaiters.shift()?.(t);
      });
      return new Response(
        new ReadableStream({
          start(c) {
            let i = 0;
            const tick = () => {
              c.enqueue(enc.encode(`data: {"i":${i++}}\n\n`));
              if (i < 200) timer = setTimeout(tick, 10);
              else c.close();
            };
            tick();
          },
          cancel() {
            clearTimeout(timer);
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      );
    }
    return new Response(text, {
      headers: { "content-type": "application/json" },
    });
  },
});
const modelUrl = model.url;

const keys = await generateKeys();

async function startWorker(unsecured: boolean) {
  const dir = await Deno.makeTempDir();
  const port = freePort();
  await Deno.writeTextFile(`${dir}/key.pem`, keys.publicPem);
  await Deno.writeTextFile(
    `${dir}/worker.yaml`,
    `modelServerUrl: ${modelUrl}\nhandlers:\n` +
      `  - { route: /echo, allowParallelRequests: true, maxQueueTime: null }\n` +
      `  - { route: /stream, allowParallelRequests: true, maxQueueTime: null }\n`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "run", "--config", `${dir}/worker.yaml`],
    cwd: dir,
    env: {
      WORKER_PORT: String(port),
      WORKER_HTTP_PORT: String(freePort()),
      EDGEWORKER_HOST: "127.0.0.1",
      UNSECURED: String(unsecured),
      EDGEWORKER_PUBKEY_FILE: `${dir}/key.pem`,
      EDGEWORKER_LOG_LEVEL: "warning",
    },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  await waitReady(url);
  return {
    url,
    pid: child.pid,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function envelopeFor(url: string, payload: unknown): Promise<string> {
  const message = enc.encode(JSON.stringify({ url }, null, 4));
  const sig = new Uint8Array(
    await crypto.subtle.sign("RSASSA-PKCS1-v1_5", keys.privateKey, message),
  );
  const auth_data = {
    cost: 100,
    endpoint: "bench",
    reqnum: 1,
    request_idx: 1,
    signature: btoa(String.fromCharCode(...sig)),
    url,
  };
  return JSON.stringify({ auth_data, payload });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function load(url: string, body: string) {
  const latencies: number[] = [];
  let next = 0;
  let failures = 0;
  const deadline = performance.now() + 60_000;
  const started = performance.now();
  await Promise.all(
    [...Array(CONCURRENCY)].map(async () => {
      while (next < REQUESTS && performance.now() < deadline) {
        next++;
        const t = performance.now();
        const res = await fetch(url, {
          method: "POST",
          body,
          headers: { "content-type": "application/json" },
        });
        await res.arrayBuffer();
        if (!res.ok) failures++;
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    rps: latencies.length / seconds,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    failures,
  };
}

async function ttfb(url: string, body: string, trials = 30): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < trials; i++) {
    const t = performance.now();
    const res = await fetch(url, { method: "POST", body });
    const reader = res.body!.getReader();
    await reader.read();
    times.push(performance.now() - t);
    await reader.cancel();
  }
  times.sort((a, b) => a - b);
  return percentile(times, 0.5);
}

async function abortLatency(
  url: string,
  body: string,
  trials = 20,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < trials; i++) {
    aborts = [];
    const ctl = new AbortController();
    const res = await fetch(url, { method: "POST", body, signal: ctl.signal });
    const reader = res.body!.getReader();
    await reader.read();
    const seen = new Promise<number>((r) => abortWaiters.push(r));
    const t = performance.now();
    ctl.abort();
    await reader.cancel().catch(() => {});
    const timeout = new Promise<number>((r) => setTimeout(() => r(NaN), 2000));
    out.push((await Promise.race([seen, timeout])) - t);
  }
  return out.sort((a, b) => a - b);
}

function row(
  name: string,
  r: { rps: number; p50: number; p99: number; failures: number },
) {
  console.log(
    `${name.padEnd(34)} ${r.rps.toFixed(0).padStart(7)} req/s   p50 ${
      r.p50.toFixed(2)
    } ms   p99 ${r.p99.toFixed(2)} ms   failures ${r.failures}`,
  );
}

async function rssOf(pid: number): Promise<string> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    return status.match(/VmRSS:\s+(\d+) kB/)?.[1] ?? "?";
  } catch {
    return "?";
  }
}

console.log(
  `edgeworker bench: ${REQUESTS} small JSON requests, concurrency ${CONCURRENCY}, ${Deno.build.target}`,
);
const payload = { prompt: "hello", max_tokens: 16 };
const direct = await load(`${modelUrl}/echo`, JSON.stringify(payload));
const signed = await startWorker(false);
const open = await startWorker(true);
try {
  const signedBody = await envelopeFor(signed.url, payload);
  const openBody = await envelopeFor(open.url, payload);
  // Warm both up so JIT and connection pools are comparable.
  await load(`${signed.url}/echo`, signedBody);
  await load(`${open.url}/echo`, openBody);
  row("direct to model stand-in", direct);
  row(
    "through worker, signatures checked",
    await load(`${signed.url}/echo`, signedBody),
  );
  row("through worker, UNSECURED", await load(`${open.url}/echo`, openBody));
  const streamBody = await envelopeFor(signed.url, { stream: true });
  console.log(
    `stream time to first byte (p50): direct ${
      (await ttfb(`${modelUrl}/stream`, "{}")).toFixed(2)
    } ms, through worker ${
      (await ttfb(`${signed.url}/stream`, streamBody)).toFixed(2)
    } ms`,
  );
  const lat = await abortLatency(`${signed.url}/stream`, streamBody);
  console.log(
    `client disconnect -> model call aborted: p50 ${
      percentile(lat, 0.5).toFixed(2)
    } ms, max ${lat[lat.length - 1].toFixed(2)} ms (${lat.length} trials)`,
  );
  console.log(
    `worker resident memory after load: ${await rssOf(signed.pid)} kB`,
  );
} finally {
  await signed.stop();
  await open.stop();
  await model.close();
}
