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
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-bench-" });
  await Deno.writeTextFile(`${dir}/key.pem`, publicPem);
  await Deno.writeTextFile(
    `${dir}/worker.yaml`,
    [
      `modelServerUrl: ${upstream}`,
      "handlers:",
      "  - { route: /echo, allowParallelRequests: true, maxQueueTime: null }",
      "  - { route: /stream, allowParallelRequests: true, maxQueueTime: null }",
      "",
    ].join("\n"),
  );
  const port = freePort();
  try {
    const target = await spawnDeno(
      name,
      port,
      [
        // What the release binary runs with (its permissions aside).
        ...WORKER_RUNTIME_FLAGS,
        ...extraDenoArgs,
        MAIN,
        "run",
        "--config",
        `${dir}/worker.yaml`,
      ],
      definedOnly(workerEnv(port, {
        ...WORKER_RUNTIME_ENV,
        UNSECURED: String(unsecured),
        EDGEWORKER_PUBKEY_FILE: `${dir}/key.pem`,
        EDGEWORKER_LOG_LEVEL: "error",
        EDGEWORKER_BENCHMARK: "skip",
        EDGEWORKER_BENCHMARK_FILE: `${dir}/.has_benchmark`,
        EDGEWORKER_UPDATE_FILE: `${dir}/.force_update`,
        EDGEWORKER_DRAIN_SECONDS: "1",
        ...extraEnv,
      })),
      dir,
    );
    await waitReady(target.url);
    let stopped: Promise<void> | undefined;
    return {
      ...target,
      stop() {
        // Once, however often asked.
        stopped ??= target.stop().then(() =>
          Deno.remove(dir, { recursive: true })
        );
        return stopped;
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
