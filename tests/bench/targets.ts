/**
 * The processes of the bench, each its own `deno` process on 127.0.0.1:
 * the fast upstream, the minimal proxy and edgeworker (`main.ts run
 * --config`, signed or `UNSECURED=true`). Each start is timed from spawn to
 * the first `GET /health` that answers 200.
 *
 * @module
 */
import { freePort, workerEnv } from "../e2e/_scenario.ts";
import { commandName } from "./proc.ts";
import { vllm } from "../../workers/vllm.ts";
import {
  WORKER_RUNTIME_ENV,
  WORKER_RUNTIME_FLAGS,
} from "../../tools/permissions.ts";

const here = (path: string) => new URL(path, import.meta.url).pathname;
const DENO_JSON = here("../../deno.json");
const MAIN = here("../../main.ts");

/** A running bench process. */
export interface Target {
  name: string;
  /** Base URL, `http://127.0.0.1:<port>`. */
  url: string;
  /** Pid of the deno process itself (no wrapper in between). */
  pid: number;
  /** Milliseconds from spawn to the first 200 on `/health`. */
  startupMs: number;
  stop(): Promise<void>;
}

/** Polls `GET url/health` until 200; milliseconds since `t0`. */
async function firstHealth(
  url: string,
  t0: number,
  child: Deno.ChildProcess,
  timeoutMs = 30_000,
): Promise<number> {
  let exited = false;
  child.status.then(() => exited = true);
  while (performance.now() - t0 < timeoutMs && !exited) {
    try {
      const res = await fetch(`${url}/health`);
      await res.body?.cancel();
      if (res.status === 200) return performance.now() - t0;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`${url}/health never answered 200 (exited: ${exited})`);
}

/** Spawns `deno run -A <args>` with `env`, waits for its `/health`. */
async function spawnDeno(
  name: string,
  port: number,
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<Target> {
  const url = `http://127.0.0.1:${port}`;
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `--config=${DENO_JSON}`, ...args],
    env: { NO_COLOR: "1", ...env },
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  let startupMs: number;
  try {
    startupMs = await firstHealth(url, t0, child);
  } catch (e) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
    throw e;
  }
  const comm = await commandName(child.pid);
  if (comm !== "deno") {
    throw new Error(`${name}: pid ${child.pid} is "${comm}", not deno`);
  }
  return {
    name,
    url,
    pid: child.pid,
    startupMs,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await child.status;
    },
  };
}

/** The fast upstream (`upstream_server.ts`). */
export function startUpstream(): Promise<Target> {
  const port = freePort();
  return spawnDeno("upstream", port, [
    here("./upstream_server.ts"),
    String(port),
  ]);
}

/** The minimal forwarding proxy (`minimal_proxy.ts`) in front of `upstream`. */
export function startMinimalProxy(
  upstream: string,
  extraDenoArgs: string[] = [],
): Promise<Target> {
  const port = freePort();
  return spawnDeno("minimal proxy", port, [
    ...extraDenoArgs,
    here("./minimal_proxy.ts"),
    String(port),
    upstream,
  ]);
}

/** `relay_variants.ts` in front of `upstream`, passing answers on `mode`'s way. */
export function startRelayVariant(
  upstream: string,
  mode: string,
): Promise<Target> {
  const port = freePort();
  return spawnDeno(`relay ${mode}`, port, [
    here("./relay_variants.ts"),
    String(port),
    upstream,
    mode,
  ]);
}

/**
 * edgeworker from source in front of `upstream`, with the routes `/echo`
 * and `/stream` (parallel, no queue limit). Signatures are checked against
 * `publicPem` unless `unsecured`. Its config and files live in a temp dir
 * removed by `stop()`.
 */
export async function startEdgeworker(
  name: string,
  upstream: string,
  publicPem: string,
  unsecured: boolean,
  extraDenoArgs: string[] = [],
  extraEnv: Record<string, string | undefined> = {},
): Promise<Target> {
  const { target } = await spawnEdgeworker(name, upstream, publicPem, {
    unsecured,
    extraDenoArgs,
    extraEnv: { EDGEWORKER_BENCHMARK: "skip", ...extraEnv },
  });
  try {
    await waitReady(target.url);
  } catch (e) {
    await target.stop();
    throw e;
  }
  return target;
}

/** A signed edgeworker still waiting for its model (see {@linkcode startLoadingEdgeworker}). */
export interface LoadingTarget extends Target {
  /** The model's log, empty: the worker is ready once {@linkcode LOADED_LINE} is in it and its benchmark ran. */
  logFile: string;
}

/** The vllm preset's load pattern (`workers/vllm.ts`, its one owner). */
const VLLM_LOADED = (() => {
  const pattern = vllm.config({}).logActions?.onLoad?.[0];
  if (typeof pattern !== "string") {
    throw new Error("the vllm preset's first onLoad pattern is not a string");
  }
  return pattern;
})();

/** The line of the model's log that says it loaded: vLLM's, as uvicorn writes it. */
export const LOADED_LINE = `INFO:     ${VLLM_LOADED}`;

/**
 * edgeworker as a template starts it, before its model is up: it watches
 * an empty model log for {@linkcode LOADED_LINE}, then runs a startup
 * benchmark of `benchmarkRuns` rounds of `/echo` against `upstream` before
 * it is ready. Returns once it listens (`/health`).
 */
export async function startLoadingEdgeworker(
  upstream: string,
  publicPem: string,
  benchmarkRuns: number,
): Promise<LoadingTarget> {
  const { target, dir } = await spawnEdgeworker(
    "edgeworker (loading)",
    upstream,
    publicPem,
    {
      unsecured: false,
      configLines: [
        "readiness: logs",
        "logActions:",
        `  onLoad: [${JSON.stringify(VLLM_LOADED)}]`,
      ],
      echoBenchmark:
        `{ dataset: [{ prompt: hello, max_tokens: 16 }], runs: ${benchmarkRuns}, concurrency: 4 }`,
      extraEnv: { EDGEWORKER_BENCHMARK: "force" },
      logFile: "model.log",
    },
  );
  return { ...target, logFile: `${dir}/model.log` };
}

interface SpawnOptions {
  unsecured: boolean;
  extraDenoArgs?: string[];
  extraEnv?: Record<string, string | undefined>;
  /** Top-level YAML lines added to the config. */
  configLines?: string[];
  /** The `/echo` handler's `benchmark:` (YAML flow), if any. */
  echoBenchmark?: string;
  /** A model log created empty in the temp dir (`modelLogFile`). */
  logFile?: string;
}

async function spawnEdgeworker(
  name: string,
  upstream: string,
  publicPem: string,
  o: SpawnOptions,
): Promise<{ target: Target; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-bench-" });
  await Deno.writeTextFile(`${dir}/key.pem`, publicPem);
  const bench = o.echoBenchmark ? `, benchmark: ${o.echoBenchmark}` : "";
  await Deno.writeTextFile(
    `${dir}/worker.yaml`,
    [
      `modelServerUrl: ${upstream}`,
      ...(o.logFile ? [`modelLogFile: ${dir}/${o.logFile}`] : []),
      ...(o.configLines ?? []),
      "handlers:",
      `  - { route: /echo, allowParallelRequests: true, maxQueueTime: null${bench} }`,
      "  - { route: /stream, allowParallelRequests: true, maxQueueTime: null }",
      "",
    ].join("\n"),
  );
  if (o.logFile) await Deno.writeTextFile(`${dir}/${o.logFile}`, "");
  const port = freePort();
  try {
    const target = await spawnDeno(
      name,
      port,
      [
        // What the release binary runs with (its permissions aside).
        ...WORKER_RUNTIME_FLAGS,
        ...(o.extraDenoArgs ?? []),
        MAIN,
        "run",
        "--config",
        `${dir}/worker.yaml`,
      ],
      definedOnly(workerEnv(port, {
        ...WORKER_RUNTIME_ENV,
        UNSECURED: String(o.unsecured),
        EDGEWORKER_PUBKEY_FILE: `${dir}/key.pem`,
        EDGEWORKER_LOG_LEVEL: "error",
        EDGEWORKER_BENCHMARK_FILE: `${dir}/.has_benchmark`,
        EDGEWORKER_UPDATE_FILE: `${dir}/.force_update`,
        EDGEWORKER_DRAIN_SECONDS: "1",
        ...o.extraEnv,
      })),
      dir,
    );
    let stopped: Promise<void> | undefined;
    return {
      dir,
      target: {
        ...target,
        stop() {
          // Once, however often asked.
          stopped ??= target.stop().then(() =>
            Deno.remove(dir, { recursive: true })
          );
          return stopped;
        },
      },
    };
  } catch (e) {
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
}

/** `env` without its undefined values (an `extraEnv` key set to undefined unsets it). */
function definedOnly(
  env: Record<string, string | undefined>,
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter((e): e is [string, string] =>
      e[1] !== undefined
    ),
  );
}

/** Waits until `GET url/ready` answers 200 (the worker admits requests). */
async function waitReady(url: string, timeoutMs = 15_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    const res = await fetch(`${url}/ready`);
    await res.body?.cancel();
    if (res.status === 200) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${url}/ready never answered 200`);
}
