/**
 * `deno task dev`: a demo model server (OpenAI-compatible, vLLM log lines),
 * a local control plane (signs `/route/`, records reports) and the worker
 * with the `vllm` preset in front of it, in one process.
 *
 * @module
 */
import { setupLogging } from "../lib/worker/logging.ts";
import { Worker } from "../lib/worker/worker.ts";
import { vllm } from "../workers/vllm.ts";
import { startControlPlane } from "./control_plane.ts";
import { startOpenAiServer } from "./openai_server.ts";

/** Options of {@linkcode startDemo}. */
export interface DemoOptions {
  /** Worker port. @default {3000} */
  workerPort?: number;
  /** Tokens per second of the demo model. @default {250} */
  tokensPerSecond?: number;
  /** Directory for the model log and benchmark cache; a temp dir by default. */
  dir?: string;
}

/** The running demo. */
export interface Demo {
  workerUrl: string;
  controlPlaneUrl: string;
  modelUrl: string;
  /** Waits until the worker is ready (or errored). */
  ready: Promise<string>;
  /** The copy-paste requests printed at start. */
  instructions: string;
  close(): Promise<void>;
}

/** Starts the three parts; the caller stops them with `close()`. */
export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const dir = options.dir ??
    await Deno.makeTempDir({ prefix: "edgeworker-demo-" });
  const logFile = `${dir}/vllm.log`;
  const model = await startOpenAiServer({
    logFile,
    flavor: "vllm",
    model: "demo-model",
    tokensPerSecond: options.tokensPerSecond ?? 250,
  });
  const controlPlane = await startControlPlane({});
  const port = options.workerPort ?? 3000;
  const env: Record<string, string> = {
    WORKER_PORT: String(port),
    REPORT_ADDR: controlPlane.url,
    CONTAINER_ID: "1",
    PUBLIC_IPADDR: "127.0.0.1",
    MASTER_TOKEN: "demo-master-token",
    MODEL_SERVER_URL: model.url,
    MODEL_LOG: logFile,
    MODEL_NAME: "demo-model",
    BENCHMARK_RUNS: "2",
    EDGEWORKER_HOST: "127.0.0.1",
    EDGEWORKER_BENCHMARK_FILE: `${dir}/.has_benchmark`,
  };
  const worker = new Worker(vllm.config(env));
  const running = await worker.start({ env, port, httpPort: false });
  controlPlane.setWorkerUrl(running.url);

  const ready = new Promise<string>((resolve) => {
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

  const route =
    `curl -s -X POST ${controlPlane.url}/route/ -d '{"endpoint":"demo","api_key":"demo","cost":100}'`;
  const instructions = [
    "",
    "edgeworker demo",
    `  worker:        ${running.url}   (GET /ready /metrics /status)`,
    `  model server:  ${model.url}   (OpenAI-compatible stand-in, log ${logFile})`,
    `  control plane: ${controlPlane.url}   (/pubkey/ /route/ /worker_status/ /delete_requests/)`,
    "",
    "Ask the control plane for a signed route, then send a streaming chat request:",
    "",
    `  AUTH=$(${route})`,
    `  curl -N ${running.url}/v1/chat/completions -H 'content-type: application/json' \\`,
    `    -d "{\\"auth_data\\": $AUTH, \\"payload\\": {\\"model\\": \\"demo-model\\", \\"stream\\": true, \\"max_tokens\\": 20, \\"messages\\": [{\\"role\\": \\"user\\", \\"content\\": \\"Hello\\"}]}}"`,
    "",
    "Press Ctrl-C to stop.",
    "",
  ].join("\n");

  return {
    workerUrl: running.url,
    controlPlaneUrl: controlPlane.url,
    modelUrl: model.url,
    ready,
    instructions,
    async close() {
      await running.shutdown("demo stopped");
      await model.close();
      await controlPlane.close();
    },
  };
}

/** Runs the demo until Ctrl-C; returns the exit code. */
export async function runDemo(): Promise<number> {
  await setupLogging({ level: "info" });
  const port = Number(Deno.env.get("WORKER_PORT") ?? 3000);
  const demo = await startDemo({ workerPort: port });
  console.log(demo.instructions);
  void demo.ready.then((state) => {
    console.log(
      state === "ready"
        ? `Worker is ready: try the request above (${demo.workerUrl})`
        : `Worker is in error: see ${demo.workerUrl}/status`,
    );
  });
  const { promise: stopped, resolve } = Promise.withResolvers<void>();
  const stop = () => resolve();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await stopped;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  console.log("Stopping the demo...");
  await demo.close();
  return 0;
}
