/**
 * The worker under chaos: `deno run -A main.ts run --config worker.yaml` as
 * a real subprocess, reporting to the run's autoscaler with signatures
 * checked, plus readers of what it shows (`/metrics`, `/status`, and its
 * RSS and open descriptors from `/proc`).
 *
 * @module
 */
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { freePort, waitReady } from "../e2e/_scenario.ts";
import { terminate } from "../helpers/process.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Routes of the chaos worker; the model serves them all the same way. */
export const ROUTES = {
  /** Parallel, no queue budget. */
  chat: "/v1/chat",
  /** At most 4 at once, FIFO beyond. */
  slots: "/v1/slots",
  /** Python's FIFO: one at a time. */
  fifo: "/v1/fifo",
  /** Parallel with `maxQueueTime: 1` (429 possible). */
  budget: "/v1/budget",
} as const;

/** Settings of the worker under chaos. */
export interface WorkerSettings {
  modelUrl: string;
  reportAddr: string;
  /** `EDGEWORKER_MAX_BODY_BYTES`; undefined leaves it unlimited. */
  maxBodyBytes: number | undefined;
  /** `timeouts.firstByte` in seconds. */
  firstByteTimeoutSeconds: number;
  /** `MASTER_TOKEN` (must never show on `/status` or `/metrics`). */
  masterToken: string;
}

/** A running worker subprocess. */
export interface WorkerProcess {
  base: string;
  port: number;
  pid: number;
  /** Its output so far (stdout and stderr, last 2000 lines). */
  output(): string;
  /** Output lines that are not one JSON object each (the worker logs JSON
   * lines), and the first few of them. */
  readonly nonJson: { count: number; examples: string[] };
  /** Exit status once it exited. */
  readonly exited: Deno.CommandStatus | undefined;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves to the exit status. */
  stop(graceMs?: number): Promise<Deno.CommandStatus>;
}

/** The YAML config of the chaos worker. */
export function chaosConfig(s: WorkerSettings): string[] {
  const route = (
    path: string,
    extra: string[],
  ) => [
    `  - route: ${path}`,
    ...extra.map((l) => `    ${l}`),
    `    workload: { kind: field, path: max_tokens, default: 1 }`,
  ];
  return [
    `modelServerUrl: ${s.modelUrl}`,
    `modelHealthUrl: /health`,
    `readiness: healthcheck`,
    `healthcheck: { intervalSeconds: 1, timeoutSeconds: 2, failureThreshold: 3 }`,
    `timeouts: { firstByte: ${s.firstByteTimeoutSeconds} }`,
    `handlers:`,
    ...route(ROUTES.chat, [
      "allowParallelRequests: true",
      "maxQueueTime: null",
    ]),
    ...route(ROUTES.slots, [
      "allowParallelRequests: true",
      "maxConcurrency: 4",
      "maxQueueTime: null",
    ]),
    ...route(ROUTES.fifo, [
      "allowParallelRequests: false",
      "maxQueueTime: null",
    ]),
    ...route(ROUTES.budget, ["allowParallelRequests: true", "maxQueueTime: 1"]),
  ];
}

/** Starts the worker in `dir` and waits until `/ready` answers 200. */
export async function startWorkerProcess(
  dir: string,
  s: WorkerSettings,
): Promise<WorkerProcess> {
  // A port found free may be taken before the worker binds it: try again.
  for (let attempt = 1;; attempt++) {
    try {
      return await startOnce(dir, s);
    } catch (e) {
      if (attempt >= 3 || !String(e).includes("Address already in use")) {
        throw e;
      }
    }
  }
}

/** Two distinct ports that were free a moment ago. */
function twoPorts(): [number, number] {
  const a = freePort();
  let b = freePort();
  while (b === a) b = freePort();
  return [a, b];
}

async function startOnce(
  dir: string,
  s: WorkerSettings,
): Promise<WorkerProcess> {
  const [port, httpPort] = twoPorts();
  await Deno.writeTextFile(`${dir}/worker.yaml`, chaosConfig(s).join("\n"));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "run", "--config", `${dir}/worker.yaml`],
    cwd: dir,
    env: {
      NO_COLOR: "1",
      WORKER_PORT: String(port),
      WORKER_HTTP_PORT: String(httpPort),
      EDGEWORKER_HOST: "127.0.0.1",
      PUBLIC_IPADDR: "127.0.0.1",
      REPORT_ADDR: s.reportAddr,
      UNSECURED: "false",
      EDGEWORKER_CHECK_URL: "true",
      CONTAINER_ID: "4242",
      MASTER_TOKEN: s.masterToken,
      EDGEWORKER_BENCHMARK: "skip",
      EDGEWORKER_BENCHMARK_FILE: `${dir}/.has_benchmark`,
      EDGEWORKER_UPDATE_FILE: `${dir}/.force_update`,
      EDGEWORKER_DRAIN_SECONDS: "2",
      EDGEWORKER_LOG_LEVEL: "warning",
      EDGEWORKER_LOG_FORMAT: "json",
      ...(s.maxBodyBytes === undefined
        ? {}
        : { EDGEWORKER_MAX_BODY_BYTES: String(s.maxBodyBytes) }),
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const nonJson = { count: 0, examples: [] as string[] };
  const keep = (line: string) => {
    lines.push(line);
    if (lines.length > 2000) lines.splice(0, lines.length - 2000);
    let ok = false;
    try {
      const v = JSON.parse(line);
      ok = v !== null && typeof v === "object" && !Array.isArray(v);
    } catch { /* counted below */ }
    if (!ok && line.trim() !== "") {
      nonJson.count++;
      if (nonJson.examples.length < 3) {
        nonJson.examples.push(line.slice(0, 160));
      }
    }
  };
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let rest = "";
    for await (const t of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + t).split("\n");
      rest = parts.pop() ?? "";
      for (const p of parts) keep(p);
    }
    if (rest) keep(rest);
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then(async (st) => {
    exited = st;
    await pumps;
    return st;
  });
  const base = `http://127.0.0.1:${port}`;
  const proc: WorkerProcess = {
    base,
    port,
    pid: child.pid,
    output: () => lines.join("\n"),
    nonJson,
    get exited() {
      return exited;
    },
    async stop(graceMs = 8000) {
      if (!exited) await terminate(child, status, graceMs);
      return await status;
    },
  };
  try {
    await waitReady(base, 30_000);
  } catch (e) {
    await proc.stop(1000);
    throw new Error(`worker did not get ready: ${e}\n${proc.output()}`);
  }
  return proc;
}

/** The figures of `/metrics` the books need. */
export interface WorkerMetricsBook {
  /** `edgeworker_requests_total` summed over routes, by outcome. */
  outcomes: Record<"success" | "error" | "cancelled" | "rejected", number>;
  /** `edgeworker_requests_rejected_total` by reason. */
  rejectedBy: Record<string, number>;
  inFlight: number;
  queued: number;
  workloadInFlight: number;
  rssBytes: number;
  /** The raw text (for secret checks). */
  text: string;
}

interface Family {
  name: string;
  metrics: { value?: string; labels?: Record<string, string> }[];
}

/** Reads `/metrics`. */
export async function readMetrics(base: string): Promise<WorkerMetricsBook> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const families = new Map(
    (parsePrometheusTextFormat(text) as Family[]).map((f) => [f.name, f]),
  );
  const one = (name: string) =>
    Number(families.get(name)?.metrics[0]?.value ?? NaN);
  const outcomes = { success: 0, error: 0, cancelled: 0, rejected: 0 };
  for (const m of families.get("edgeworker_requests_total")?.metrics ?? []) {
    const o = m.labels?.outcome as keyof typeof outcomes;
    if (o in outcomes) outcomes[o] += Number(m.value);
  }
  const rejectedBy: Record<string, number> = {};
  for (
    const m of families.get("edgeworker_requests_rejected_total")?.metrics ?? []
  ) {
    const n = Number(m.value);
    if (n > 0) rejectedBy[m.labels?.reason ?? "?"] = n;
  }
  return {
    outcomes,
    rejectedBy,
    inFlight: one("edgeworker_requests_in_flight"),
    queued: one("edgeworker_requests_queued"),
    workloadInFlight: one("edgeworker_workload_in_flight"),
    rssBytes: one("edgeworker_process_resident_memory_bytes"),
    text,
  };
}

/** Reads `/status` as JSON (and its text, for secret checks). */
export async function readStatus(
  base: string,
): Promise<{ json: Record<string, unknown>; text: string }> {
  const text = await (await fetch(`${base}/status`)).text();
  return { json: JSON.parse(text), text };
}

/** RSS (bytes) and open descriptors of a process, from `/proc`. */
export async function procFigures(
  pid: number,
): Promise<{ rssBytes: number; fds: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  let fds = 0;
  for await (const _ of Deno.readDir(`/proc/${pid}/fd`)) fds++;
  return { rssBytes: kb * 1024, fds };
}
