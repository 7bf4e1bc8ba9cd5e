/**
 * Harness of the preset end-to-end tests: `main.ts run --preset <name>` in
 * a subprocess, reporting to a control-plane stand-in (real signatures:
 * the worker fetches `/pubkey/`, requests carry `/route/`'s `auth_data`).
 */
import assert from "node:assert/strict";
import {
  type ControlPlane,
  startControlPlane,
} from "../../dev/control_plane.ts";
import { controlPlaneKeys } from "../helpers/dev.ts";
import { freePort, workerEnv } from "./_scenario.ts";
import { markerFiles } from "../helpers/worker.ts";
import { waitFor } from "../helpers/http.ts";
import { terminate } from "../helpers/process.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Variables a Deno subprocess needs from ours (cache and temp dirs). */
const PASS_THROUGH = [
  "PATH",
  "HOME",
  "DENO_DIR",
  "XDG_CACHE_HOME",
  "TMPDIR",
  "DENO_NO_UPDATE_CHECK",
];

let keys: Promise<CryptoKeyPair> | undefined;

/** One RSA key pair for every control plane of a test file. */
function sharedKeys(): Promise<CryptoKeyPair> {
  keys ??= controlPlaneKeys();
  return keys;
}

/** A worker subprocess running a preset, with its control plane. */
export interface PresetWorker {
  /** Worker base URL. */
  readonly base: string;
  /** The control plane it reports to. */
  readonly cp: ControlPlane;
  /** stdout + stderr so far. */
  output(): string;
  /** Signed `auth_data` from the control plane's `/route/`. */
  route(): Promise<Record<string, unknown>>;
  /** POSTs `payload` to `route` with fresh signed `auth_data`. */
  call(
    route: string,
    payload: unknown,
    auth?: Record<string, unknown>,
  ): Promise<Response>;
  /** `GET /status`. */
  status(): Promise<Record<string, unknown>>;
  /** Sum of `new_load` over every `worker_status` report so far. */
  newLoad(): number;
  /** Waits until the reported `new_load` adds up to `expected`. */
  waitNewLoad(expected: number, timeoutMs?: number): Promise<void>;
  /** Waits for `/ready` 200; throws at once if the worker errors, exits or cannot launch. */
  waitReady(timeoutMs?: number): Promise<void>;
  /** {@linkcode waitReady}, then checks the benchmark measured a
   * `max_perf`; returns the `/status` that shows it. */
  waitBenchmarked(timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Checks that `/ready` answers 200 now. */
  assertReady(): Promise<void>;
  /** Waits for `/ready` 503 in state `error`; returns its `error_msg`. */
  waitError(timeoutMs?: number): Promise<string>;
  /** Waits until the worker printed `text`. */
  waitOutput(text: string, timeoutMs?: number): Promise<void>;
  /** SIGTERM (then SIGKILL), waits for the exit, closes the control plane. */
  stop(): Promise<void>;
}

/**
 * Starts the control plane and `main.ts run --preset <preset>` in `dir`
 * with `env` on top of fast, local test settings.
 */
export async function startPresetWorker(
  preset: string,
  dir: string,
  env: Record<string, string>,
): Promise<PresetWorker> {
  const cp = await startControlPlane({ keyPair: await sharedKeys() });
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  cp.setWorkerUrl(base);
  const inherited: Record<string, string> = {};
  for (const k of PASS_THROUGH) {
    const v = Deno.env.get(k);
    if (v !== undefined) inherited[k] = v;
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "run", "--preset", preset],
    cwd: dir,
    clearEnv: true,
    env: {
      ...inherited,
      ...workerEnv(port, {
        REPORT_ADDR: cp.url,
        CONTAINER_ID: "7",
        MASTER_TOKEN: "e2e-token",
        ...markerFiles(dir),
        EDGEWORKER_DRAIN_SECONDS: "1",
        ...env,
      }),
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
      out += chunk;
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then((s) => exited = s);

  const ready = async (): Promise<Record<string, unknown> | undefined> => {
    try {
      const r = await fetch(`${base}/ready`);
      return { status: r.status, ...await r.json() };
    } catch {
      return undefined;
    }
  };
  const route = async () => {
    const r = await fetch(`${cp.url}/route/`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ endpoint: "e2e", api_key: "key", cost: 100 }),
    });
    return await r.json() as Record<string, unknown>;
  };
  const handle: PresetWorker = {
    base,
    cp,
    output: () => out,
    route,
    call: async (path, payload, auth) =>
      fetch(base + path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          auth_data: auth ?? await route(),
          payload,
          session_id: null,
        }),
      }),
    status: async () => await (await fetch(`${base}/status`)).json(),
    newLoad: () =>
      cp.statusReports.reduce(
        (sum, r) =>
          sum + Number((r.body as Record<string, unknown>)?.new_load ?? 0),
        0,
      ),
    waitNewLoad: (expected, timeoutMs = 8000) =>
      waitFor(
        () => Math.abs(handle.newLoad() - expected) <= 1e-6,
        timeoutMs,
      ).catch(() => {
        throw new Error(
          `${preset}: reported new_load adds up to ${handle.newLoad()}, expected ${expected}`,
        );
      }),
    waitReady: (timeoutMs = 30000) =>
      waitFor(
        async () => {
          if (exited) throw new Error(`${preset} exited with ${exited.code}`);
          // It stays up to tell the autoscaler, but will never be ready.
          if (out.includes("Worker failed to launch")) {
            throw new Error(`${preset} failed to launch:\n${out}`);
          }
          const r = await ready();
          if (r?.state === "error") {
            throw new Error(`${preset} errored: ${r.error_msg}`);
          }
          return r?.status === 200;
        },
        timeoutMs,
        `${preset} ready`,
      ),
    waitBenchmarked: async (timeoutMs) => {
      await handle.waitReady(timeoutMs);
      const status = await handle.status();
      assert.ok(Number(status.max_perf) > 0, `max_perf ${status.max_perf}`);
      return status;
    },
    assertReady: async () => {
      const r = await fetch(`${base}/ready`);
      assert.equal(r.status, 200);
      await r.body?.cancel();
    },
    waitError: async (timeoutMs = 10000) => {
      let msg = "";
      await waitFor(
        async () => {
          const r = await ready();
          if (r?.status === 503 && r.state === "error") {
            msg = String(r.error_msg);
            return true;
          }
          return false;
        },
        timeoutMs,
        `${preset} in error`,
      );
      return msg;
    },
    waitOutput: (text, timeoutMs = 5000) =>
      waitFor(
        () => out.includes(text),
        timeoutMs,
        `${preset} printing ${text}`,
      ),
    stop: async () => {
      if (!exited) await terminate(child, status, 5000);
      await pumps;
      await cp.close();
    },
  };
  return handle;
}

/** What a scenario gets from {@linkcode inTempDir}. */
export interface ScenarioContext {
  /** A fresh temp dir (removed afterwards). */
  dir: string;
  /** Registers a cleanup; cleanups run in reverse order. */
  defer(cleanup: () => Promise<void> | void): void;
  /** Starts a preset worker (stopped afterwards; its output is printed on
   * failure). */
  start(preset: string, env: Record<string, string>): Promise<PresetWorker>;
  /** {@linkcode start} against the stand-in at `url` that writes `logFile`,
   * with a small benchmark (1 run of 2 at once) and `env` on top. */
  startAgainst(
    url: string,
    logFile: string,
    preset: string,
    env?: Record<string, string>,
  ): Promise<PresetWorker>;
}

/**
 * Runs `scenario` with a temp dir; on failure prints the workers' output;
 * always runs the cleanups, stops the workers and removes the dir.
 */
export async function inTempDir(
  name: string,
  scenario: (ctx: ScenarioContext) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `edgeworker-e2e-${name}-` });
  const cleanups: (() => Promise<void> | void)[] = [];
  const workers: PresetWorker[] = [];
  const start = async (preset: string, env: Record<string, string>) => {
    const w = await startPresetWorker(preset, dir, env);
    workers.push(w);
    cleanups.push(() => w.stop());
    return w;
  };
  try {
    await scenario({
      dir,
      defer: (c) => cleanups.push(c),
      start,
      startAgainst: (url, logFile, preset, env = {}) =>
        start(preset, {
          MODEL_SERVER_URL: url,
          MODEL_LOG: logFile,
          BENCHMARK_RUNS: "1",
          BENCHMARK_CONCURRENCY: "2",
          ...env,
        }),
    });
  } catch (e) {
    for (const w of workers) {
      console.error(`--- ${name}: worker output ---\n${w.output()}`);
    }
    throw e;
  } finally {
    for (const c of cleanups.reverse()) await c();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Runs scenarios at once and waits for all of them (so none outlives the
 * test), then throws the first failure.
 */
export async function allScenarios(
  scenarios: Promise<void>[],
): Promise<void> {
  const results = await Promise.allSettled(scenarios);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
}
