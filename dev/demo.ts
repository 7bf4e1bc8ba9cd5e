/**
 * `deno task dev` / `edgeworker demo`: a local serverless in one process.
 * N demo model servers (OpenAI-compatible, vLLM log lines), the local
 * control plane (signs `/route/`, checks and keeps reports, serves the
 * live page at `/`) and N workers with the `vllm` preset, each in front of
 * its own model server and reporting to the control plane, which routes
 * among them by load.
 *
 * @module
 */
import { setupLogging } from "../lib/worker/logging.ts";
import { type RunningWorker, Worker } from "../lib/worker/worker.ts";
import { vllm } from "../workers/vllm.ts";
import { type ControlPlane, startControlPlane } from "./control_plane.ts";
import { startOpenAiServer } from "./openai_server.ts";
import { untilSignal } from "./_async.ts";

/** Options of {@linkcode startDemo}. */
export interface DemoOptions {
  /** Number of workers (each with its own model server). @default {1} */
  workers?: number;
  /** Port of the first worker; the others follow it (0: free ports). @default {3000} */
  workerPort?: number;
  /** Control plane port (0: a free one). @default {0} */
  controlPlanePort?: number;
  /** Tokens per second of each demo model. @default {250} */
  tokensPerSecond?: number;
  /** Directory for the model logs and benchmark caches; by default a temp dir removed on `close()`. */
  dir?: string;
}

/** One worker of the demo. */
export interface DemoWorker {
  /** `CONTAINER_ID`, the id the control plane shows. */
  id: number;
  url: string;
  modelUrl: string;
}

/** The running demo. */
export interface Demo {
  /** URL of the first worker. */
  workerUrl: string;
  /** Every worker. */
  workers: DemoWorker[];
  controlPlaneUrl: string;
  /** Model server of the first worker. */
  modelUrl: string;
  /**
   * `"ready"` once every worker is ready and the control plane has its
   * ready report (so `/route/` routes); `"error"` as soon as one fails.
   */
  ready: Promise<string>;
  /** The copy-paste requests printed at start. */
  instructions: string;
  close(): Promise<void>;
}

/** Starts every part; the caller stops them with `close()`. */
export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const count = options.workers ?? 1;
  if (!Number.isInteger(count) || count < 1) {
    throw new RangeError(`workers must be an integer >= 1, got ${count}`);
  }
  const dir = options.dir ??
    await Deno.makeTempDir({ prefix: "edgeworker-demo-" });
  const closers: (() => Promise<void>)[] = [];
  // A directory the demo made itself goes when it stops.
  if (options.dir === undefined) {
    closers.push(() => Deno.remove(dir, { recursive: true }));
  }
  const controlPlane = await startControlPlane({
    port: options.controlPlanePort ?? 0,
    strict: true,
    title: `edgeworker demo: ${count} worker${count === 1 ? "" : "s"}`,
    onInvalid: (kind, r) =>
      console.warn(
        `control plane refused a ${kind} report: ${
          r.problems.map((p) => `${p.field}: ${p.error}`).join("; ")
        }`,
      ),
  });
  closers.push(() => controlPlane.close());
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      for (const c of [...closers].reverse()) await c();
    })();
  try {
    const workers: DemoWorker[] = [];
    const readies: Promise<string>[] = [];
    for (let i = 1; i <= count; i++) {
      const base = options.workerPort ?? 3000;
      const port = base === 0 ? 0 : base + i - 1;
      const started = await startOne(i, port, dir, controlPlane, options);
      closers.push(started.close);
      workers.push(started.worker);
      readies.push(started.ready);
    }
    const ready = Promise.all(readies).then((states) =>
      states.every((s) => s === "ready") ? "ready" : "error"
    );
    return {
      workerUrl: workers[0].url,
      workers,
      controlPlaneUrl: controlPlane.url,
      modelUrl: workers[0].modelUrl,
      ready,
      instructions: instructions(controlPlane.url, workers, dir),
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

async function startOne(
  id: number,
  port: number,
  dir: string,
  controlPlane: ControlPlane,
  options: DemoOptions,
): Promise<{
  worker: DemoWorker;
  ready: Promise<string>;
  close: () => Promise<void>;
}> {
  const logFile = `${dir}/vllm-${id}.log`;
  const model = await startOpenAiServer({
    logFile,
    flavor: "vllm",
    model: "demo-model",
    tokensPerSecond: options.tokensPerSecond ?? 250,
  });
  const env: Record<string, string> = {
    WORKER_PORT: String(port),
    REPORT_ADDR: controlPlane.url,
    CONTAINER_ID: String(id),
    PUBLIC_IPADDR: "127.0.0.1",
    MASTER_TOKEN: "demo-master-token",
    MODEL_SERVER_URL: model.url,
    MODEL_LOG: logFile,
    MODEL_NAME: "demo-model",
    BENCHMARK_RUNS: "2",
    EDGEWORKER_HOST: "127.0.0.1",
    EDGEWORKER_BENCHMARK_FILE: `${dir}/.has_benchmark-${id}`,
    EDGEWORKER_DASHBOARD: "true",
  };
  let running: RunningWorker;
  try {
    running = await new Worker(vllm.config(env)).start({
      env,
      port,
      httpPort: false,
    });
  } catch (e) {
    await model.close();
    throw e;
  }
  const lifecycleDone = new Promise<string>((resolve) => {
    const check = () => {
      const s = running.lifecycle.state;
      if (s === "ready" || s === "error") {
        unsubscribe();
        resolve(s);
      }
    };
    const unsubscribe = running.lifecycle.subscribe(check);
    check();
  });
  // Ready for the demo once the control plane has the ready report too.
  const ready = lifecycleDone.then(async (state) => {
    if (state !== "ready") return state;
    await controlPlane.waitFor("status", (b) => {
      const s = b as Record<string, unknown>;
      return s.id === id && Number(s.loadtime) > 0 &&
        Number(s.max_perf) > 0 && s.error_msg === "";
    }, 30_000);
    return state;
  });
  return {
    worker: { id, url: running.url, modelUrl: model.url },
    ready,
    async close() {
      await running.shutdown("demo stopped");
      await model.close();
    },
  };
}

function instructions(cp: string, workers: DemoWorker[], dir: string): string {
  const route =
    `curl -s -X POST ${cp}/route/ -d '{"endpoint":"demo","api_key":"demo","cost":100}'`;
  return [
    "",
    "edgeworker demo",
    `  live page:     ${cp}/   (workers, load, last requests, chart)`,
    `  control plane: ${cp}   (/pubkey/ /route/ /worker_status/ /delete_requests/)`,
    ...workers.map((w) =>
      `  worker ${w.id}:      ${w.url}   (GET /ready /metrics /status; /dashboard?token=demo-master-token), model ${w.modelUrl}`
    ),
    `  logs and benchmark caches in ${dir}`,
    "",
    "Ask the control plane for a signed route (it picks the least loaded ready worker),",
    "then send a streaming chat request to the worker it names:",
    "",
    `  AUTH=$(${route})`,
    `  URL=$(echo "$AUTH" | sed -E 's/.*"url": "([^"]+)".*/\\1/')`,
    `  curl -N "$URL/v1/chat/completions" -H 'content-type: application/json' \\`,
    `    -d "{\\"auth_data\\": $AUTH, \\"payload\\": {\\"model\\": \\"demo-model\\", \\"stream\\": true, \\"max_tokens\\": 20, \\"messages\\": [{\\"role\\": \\"user\\", \\"content\\": \\"Hello\\"}]}}"`,
    "",
    "Press Ctrl-C to stop.",
    "",
  ].join("\n");
}

/** Options of {@linkcode runDemo}, from the command line. */
export interface RunDemoOptions {
  workers?: number;
  workerPort?: number;
  controlPlanePort?: number;
}

/** Runs the demo until Ctrl-C; returns the exit code. */
export async function runDemo(options: RunDemoOptions = {}): Promise<number> {
  await setupLogging({ level: "info" });
  const demo = await startDemo({
    workers: options.workers,
    workerPort: options.workerPort ??
      Number(Deno.env.get("WORKER_PORT") ?? 3000),
    controlPlanePort: options.controlPlanePort,
  });
  console.log(demo.instructions);
  void demo.ready.then((state) => {
    console.log(
      state === "ready"
        ? `All ${demo.workers.length} worker(s) ready: try the request above, watch ${demo.controlPlaneUrl}/`
        : `A worker is in error: see ${demo.controlPlaneUrl}/`,
    );
  });
  await untilSignal();
  console.log("Stopping the demo...");
  await demo.close();
  return 0;
}
