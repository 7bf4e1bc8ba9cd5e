/**
 * The bench's Deno load generator, run as its own process so that it never
 * shares a CPU budget with what it measures:
 * `deno run -A tests/bench/loadgen.ts '<json job>'`; prints one JSON line.
 *
 * - `{"mode":"http", url, body, concurrency, durationMs}`: closed loop of
 *   POSTs (keep-alive), used when `wrk` is not installed.
 * - `{"mode":"sse", url, body, warmBody, streams}`: `streams` POSTs at once, each
 *   read to its end; time to first byte and total time of each, and a
 *   stream that does not end with `data: [DONE]` counts as an error. A
 *   short stream (`warmBody`) first opens each connection and warms this
 *   fresh process, so that times start at the request, not at a TCP
 *   handshake or a cold JIT.
 *
 * @module
 */
import { percentile } from "./stats.ts";

/** A job of the load generator. */
export type Job =
  | {
    mode: "http";
    url: string;
    body: string;
    concurrency: number;
    durationMs: number;
  }
  | {
    mode: "sse";
    url: string;
    body: string;
    /** A short stream, sent first on every connection, not counted. */
    warmBody: string;
    streams: number;
  };

/** What an HTTP job measured. */
export interface HttpResult {
  requests: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  transportErrors: number;
}

/** What an SSE job measured. */
export interface SseResult {
  streams: number;
  ttfbP50Ms: number;
  ttfbP99Ms: number;
  totalP50Ms: number;
  totalP99Ms: number;
  totalMaxMs: number;
  non2xx: number;
  transportErrors: number;
  /** Streams that ended without `data: [DONE]`. */
  incomplete: number;
}

const headers = { "content-type": "application/json" };

async function runHttp(job: Extract<Job, { mode: "http" }>) {
  const latencies: number[] = [];
  let non2xx = 0;
  let transportErrors = 0;
  const started = performance.now();
  const end = started + job.durationMs;
  await Promise.all(
    Array.from({ length: job.concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        try {
          const res = await fetch(job.url, {
            method: "POST",
            headers,
            body: job.body,
          });
          await res.arrayBuffer();
          if (res.status < 200 || res.status > 299) non2xx++;
          latencies.push(performance.now() - t);
        } catch {
          transportErrors++;
        }
      }
    }),
  );
  const result: HttpResult = {
    requests: latencies.length,
    seconds: (performance.now() - started) / 1000,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    non2xx,
    transportErrors,
  };
  return result;
}

async function oneStream(url: string, body: string) {
  const t = performance.now();
  const res = await fetch(url, { method: "POST", headers, body });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let ttfb = NaN;
  let tail = "";
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    if (Number.isNaN(ttfb)) ttfb = performance.now() - t;
    tail = (tail + value).slice(-64);
  }
  return {
    ok: res.status >= 200 && res.status <= 299,
    complete: tail.includes("data: [DONE]"),
    ttfb,
    total: performance.now() - t,
  };
}

async function runSse(job: Extract<Job, { mode: "sse" }>) {
  // Not counted: opens one keep-alive connection per stream and warms this
  // process's stream-reading code, so that times start at the request.
  await Promise.all(
    Array.from({ length: job.streams }, () => oneStream(job.url, job.warmBody)),
  );
  const outcomes = await Promise.allSettled(
    Array.from({ length: job.streams }, () => oneStream(job.url, job.body)),
  );
  const ttfb: number[] = [];
  const total: number[] = [];
  let non2xx = 0;
  let transportErrors = 0;
  let incomplete = 0;
  for (const o of outcomes) {
    if (o.status === "rejected") {
      transportErrors++;
      continue;
    }
    if (!o.value.ok) non2xx++;
    else if (!o.value.complete) incomplete++;
    ttfb.push(o.value.ttfb);
    total.push(o.value.total);
  }
  const result: SseResult = {
    streams: job.streams,
    ttfbP50Ms: percentile(ttfb, 0.5),
    ttfbP99Ms: percentile(ttfb, 0.99),
    totalP50Ms: percentile(total, 0.5),
    totalP99Ms: percentile(total, 0.99),
    totalMaxMs: percentile(total, 1),
    non2xx,
    transportErrors,
    incomplete,
  };
  return result;
}

if (import.meta.main) {
  const job = JSON.parse(Deno.args[0]) as Job;
  const result = job.mode === "http" ? await runHttp(job) : await runSse(job);
  console.log(JSON.stringify(result));
}
