/**
 * `edgeworker` command line: `run`, `presets`, `schema`, `demo`,
 * `control-plane`, `--version`. The compiled binary takes the same arguments.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError, workerConfigJsonSchema } from "./lib/config/validate.ts";
import { EnvError, readEnv, type WorkerEnv } from "./lib/config/env.ts";
import { announceLaunchFailure } from "./lib/worker/launch_failure.ts";
import { closeLogging, setupLogging } from "./lib/worker/logging.ts";
import { Worker } from "./lib/worker/worker.ts";
import { findPreset, PRESETS } from "./workers/mod.ts";
import { describePresets } from "./workers/describe.ts";
import denoJson from "./deno.json" with { type: "json" };

/** Version printed by `--version` (one place: deno.json). */
export const VERSION: string = denoJson.version;

/** What a release build knows about itself: `tools/build.ts` writes an
 * entry module that passes it to {@linkcode main}. */
export interface BuildInfo {
  /** Git commit the build was made from. @default {"dev"} (run from source) */
  commit: string;
}

const USAGE =
  `edgeworker ${VERSION}: serverless GPU worker, wire-compatible with Vast.ai's PyWorker

Usage:
  edgeworker run --preset <name>     serve with a preset (or BACKEND=<name> edgeworker run)
  edgeworker run --config <file>     serve with a YAML config
  edgeworker presets                 list presets
  edgeworker schema                  print the JSON Schema of the YAML config
  edgeworker demo [--workers N] [--port P] [--worker-port P]
                                     N workers (each with a model stand-in) behind a local
                                     control plane with a live page (--port: its port, free
                                     by default; --worker-port: the first worker's, 3000)
  edgeworker control-plane [--port N] [--host H]
                                     the local control plane alone (default 127.0.0.1:8080):
                                     point a worker's REPORT_ADDR at it, watch it at /
  edgeworker --version

Environment: WORKER_PORT, REPORT_ADDR, USE_SSL, UNSECURED, MASTER_TOKEN, CONTAINER_ID,
PUBLIC_IPADDR, VAST_TCP_PORT_<port>, MODEL_SERVER_URL, MODEL_LOG, BACKEND, EDGEWORKER_*
(see README).`;

/** Runs the CLI; exit codes: 2 for bad usage or config, 1 for a failed
 * start. */
export async function main(
  args: string[],
  build: BuildInfo = { commit: "dev" },
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        preset: { type: "string", short: "p" },
        config: { type: "string", short: "c" },
        version: { type: "boolean", short: "v" },
        help: { type: "boolean", short: "h" },
        workers: { type: "string" },
        port: { type: "string" },
        "worker-port": { type: "string" },
        host: { type: "string" },
      },
    });
  } catch (e) {
    console.error(`${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    const commit = build.commit === "dev" ? "dev" : `commit ${build.commit}`;
    console.log(`edgeworker ${VERSION} (${commit})`);
    return 0;
  }
  const command = positionals[0] ?? (values.help ? "help" : undefined);
  switch (command) {
    case "presets":
      console.log(describePresets(PRESETS, Deno.env.toObject()));
      return 0;
    case "schema":
      console.log(JSON.stringify(workerConfigJsonSchema(), null, 2));
      return 0;
    case "run":
      return await run(values.preset, values.config);
    case "demo":
    case "control-plane": {
      const numbers = readNumbers(values);
      if (typeof numbers === "string") {
        console.error(`${numbers}\n\n${USAGE}`);
        return 2;
      }
      // dev/ (stand-ins, control plane, live page) is loaded by these
      // commands only: `run` starts without parsing it.
      if (command === "demo") {
        const { runDemo } = await import("./dev/demo.ts");
        return await runDemo({
          workers: numbers.workers,
          controlPlanePort: numbers.port,
          workerPort: numbers["worker-port"],
        });
      }
      const { runControlPlane } = await import(
        "./dev/control_plane_command.ts"
      );
      return await runControlPlane({
        port: numbers.port,
        hostname: values.host,
      });
    }
    case "help":
      console.log(USAGE);
      return 0;
    default:
      console.error(
        command ? `Unknown command "${command}"\n\n${USAGE}` : USAGE,
      );
      return 2;
  }
}

async function run(presetName?: string, configPath?: string): Promise<number> {
  // One snapshot of the environment for the presets, the worker and us.
  const vars = Deno.env.toObject();
  let env;
  try {
    env = readEnv(vars);
  } catch (e) {
    if (e instanceof EnvError) {
      console.error(e.message);
      return 2;
    }
    throw e;
  }
  await setupLogging({
    level: env.EDGEWORKER_LOG_LEVEL,
    format: env.EDGEWORKER_LOG_FORMAT,
  });
  let worker: Worker;
  try {
    worker = await buildWorker(env, vars, presetName, configPath);
  } catch (e) {
    if (!(e instanceof ConfigError || e instanceof UsageError)) throw e;
    console.error(e.message);
    await announceLaunchFailure(
      env,
      `Worker config invalid: ${e.message}`,
      "once",
    );
    await closeLogging();
    return 2;
  }
  try {
    await worker.run({ env: vars });
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    // Keep beaconing the error to the autoscaler; the supervisor restarts us.
    await closeLogging();
    return 1;
  }
  await closeLogging();
  return 0;
}

/** The numeric options (`--workers`, `--port`, `--worker-port`), or what is wrong. */
function readNumbers(
  values: Record<string, string | boolean | undefined>,
): Partial<Record<"workers" | "port" | "worker-port", number>> | string {
  const out: Partial<Record<"workers" | "port" | "worker-port", number>> = {};
  for (const name of ["workers", "port", "worker-port"] as const) {
    const raw = values[name];
    if (typeof raw !== "string") continue;
    const n = Number(raw);
    const min = name === "workers" ? 1 : 0;
    const max = name === "workers" ? 64 : 65535;
    if (!/^\d+$/.test(raw) || n < min || n > max) {
      return `--${name} must be an integer from ${min} to ${max}, got "${raw}"`;
    }
    out[name] = n;
  }
  return out;
}

/** A command line that cannot be served (exit 2). */
class UsageError extends Error {}

async function buildWorker(
  env: WorkerEnv,
  vars: Record<string, string>,
  presetName: string | undefined,
  configPath: string | undefined,
): Promise<Worker> {
  if (presetName && configPath) {
    throw new UsageError("Give either --preset or --config, not both");
  }
  if (configPath) {
    // The YAML parser is loaded only here: `run --preset` starts without it.
    const { loadWorkerConfigFile } = await import("./lib/config/file.ts");
    return new Worker(await loadWorkerConfigFile(configPath));
  }
  const name = presetName ?? env.BACKEND;
  if (!name) {
    throw new UsageError(
      `No preset or config: use --preset, --config or BACKEND\n\n${USAGE}`,
    );
  }
  const preset = findPreset(name);
  if (!preset) {
    throw new UsageError(
      `Unknown preset "${name}": expected one of ${
        PRESETS.map((p) => p.name).join(", ")
      }`,
    );
  }
  return new Worker(preset.config(vars));
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
