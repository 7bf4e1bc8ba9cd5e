/**
 * The ComfyUI family (ComfyUI behind ai-dock's comfyui-api-wrapper, and the
 * Wan / ACE-Step workflows): route, log grammar, workload and benchmark
 * shared by their presets.
 *
 * @module
 */
import type {
  DeclarativeWorkload,
  FailureBody,
  Payload,
  WorkerConfig,
  WorkloadCalculator,
} from "../lib/config/schemas.ts";
import {
  type EnvVars,
  finiteNumber,
  isRecord,
  modelServerFrom,
  numberFrom,
  type Preset,
  presetEnvVars,
  presetError,
  readJsonFile,
} from "./_preset.ts";

/** A ComfyUI API-format graph: node id → `{class_type, inputs}`. */
export type Workflow = Record<string, unknown>;

/** Image size and steps worth {@linkcode REFERENCE_UNITS}: SD1.5 defaults. */
export const REFERENCE_IMAGE = { width: 512, height: 512, steps: 20 } as const;

/** Workload of one reference image (512×512, 20 steps). */
export const REFERENCE_UNITS = 100;

/** Where Vast's ComfyUI image links its first provisioned workflow. */
export const WELL_KNOWN_BENCHMARK =
  "/opt/comfyui-api-wrapper/workflows/pyworker_benchmark.json";

/**
 * ComfyUI itself, behind the wrapper: the base image runs it on 18188 and
 * its templates tell the wrapper so in `COMFYUI_API_BASE`; the Python
 * worker's readiness shim probes this address.
 */
export const COMFYUI_BASE = "http://127.0.0.1:18188";

/**
 * ComfyUI's own line once its HTTP server listens (`main.py`), in
 * `/var/log/portal/comfyui.log`: what the Python `wan` / `ace` workers
 * wait for, tailing that log instead of the wrapper's.
 */
export const COMFYUI_READY_LINE = "To see the GUI go to: ";

/**
 * A job the wrapper ran and lost: before 5352e36 (2026-05-07) it answers
 * such a job HTTP 200 with `"status": "failed"`; since then 500/502 (and
 * 503 + `Retry-After` when its queue is full, also `"failed"`).
 */
export const FAILED_JOB: FailureBody = { path: "status", values: ["failed"] };

/** Env vars the ComfyUI presets read. */
export const COMFY_ENV_VARS: readonly string[] = presetEnvVars([
  "BENCHMARK_RUNS",
  "BENCHMARK_JSON_PATH",
], ["COMFYUI_API_BASE"]);

/**
 * Workload units of `pixels` (width × height × frames × batch) rendered in
 * `steps` sampler steps: 512×512 at 20 steps is 100 units.
 */
export function pixelStepUnits(pixels: number, steps: number): number {
  const { width, height, steps: refSteps } = REFERENCE_IMAGE;
  return (pixels * steps) / (width * height * refSteps) * REFERENCE_UNITS;
}

/**
 * Pixels × steps of an API-format workflow, when it says so: the largest
 * `Empty…Latent…` node with numeric `width` and `height` (times `length`
 * frames and `batch_size`), and the most `steps` of any sampler or
 * scheduler node. `undefined` when either is missing (links and
 * placeholders such as `"__RANDOM_INT__"` are not numbers).
 */
export function workflowUnits(workflow: Workflow): number | undefined {
  let pixels = 0;
  let steps = 0;
  for (const node of Object.values(workflow)) {
    if (!isRecord(node) || !isRecord(node.inputs)) continue;
    const cls = typeof node.class_type === "string" ? node.class_type : "";
    const i = node.inputs;
    if (/^Empty.*Latent/.test(cls)) {
      const w = finiteNumber(i.width);
      const h = finiteNumber(i.height);
      if (w && h) {
        const frames = finiteNumber(i.length) || 1;
        const batch = finiteNumber(i.batch_size) || 1;
        pixels = Math.max(pixels, w * h * frames * batch);
      }
    }
    const s = finiteNumber(i.steps);
    if (s && /Sampler|Scheduler/.test(cls)) steps = Math.max(steps, s);
  }
  return pixels > 0 && steps > 0 ? pixelStepUnits(pixels, steps) : undefined;
}

/**
 * Workload of a comfyui-api-wrapper payload: pixels × steps (512×512×20 =
 * 100 units) from `input.modifications` when a `modifier` is used
 * (missing sizes count as the wrapper's 512×512, 20 steps), or from the
 * latent and sampler nodes of `input.workflow_json`; otherwise the
 * constant 100 the Python worker used.
 */
export function comfyWorkload(payload: Payload): number {
  const input = isRecord(payload.input) ? payload.input : payload;
  if (typeof input.modifier === "string" && input.modifier !== "") {
    const m = isRecord(input.modifications) ? input.modifications : {};
    const w = finiteNumber(m.width) || REFERENCE_IMAGE.width;
    const h = finiteNumber(m.height) || REFERENCE_IMAGE.height;
    const steps = finiteNumber(m.steps) || REFERENCE_IMAGE.steps;
    const batch = finiteNumber(m.batch_size) || 1;
    return pixelStepUnits(w * h * batch, steps);
  }
  if (isRecord(input.workflow_json)) {
    const units = workflowUnits(input.workflow_json);
    if (units !== undefined) return units;
  }
  return REFERENCE_UNITS;
}

/**
 * Request parser: the wrapper wants `{"input": {...}}`; a bare
 * `{"workflow_json": ...}` or `{"modifier": ...}` body is wrapped instead of
 * being refused with 422. Anything else is forwarded unchanged.
 */
export function wrapComfyInput(payload: Payload): Payload {
  if (payload.input !== undefined) return payload;
  if ("workflow_json" in payload || "modifier" in payload) {
    return { input: payload };
  }
  return payload;
}

/**
 * Checks a benchmark file: an API-format workflow (what ComfyUI's
 * "Save (API)" writes) or a whole `{"input": {...}}` payload.
 *
 * @returns the payload to send, without `request_id`
 * @throws {ConfigError} saying what is wrong with the file
 */
export function benchmarkPayloadOf(
  preset: string,
  path: string,
  data: unknown,
): Payload {
  const bad = (why: string) =>
    presetError(preset, `BENCHMARK_JSON_PATH: ${path} ${why}`);
  if (!isRecord(data) || Object.keys(data).length === 0) {
    throw bad("must hold a JSON object: a ComfyUI API-format workflow");
  }
  if (isRecord(data.input)) {
    const input = data.input;
    if (!isRecord(input.workflow_json) && typeof input.modifier !== "string") {
      throw bad('has "input" but no "workflow_json" object or "modifier"');
    }
    return data;
  }
  if (Array.isArray(data.nodes)) {
    throw bad(
      'is a UI-format workflow ("nodes" list): export it with "Save (API)"',
    );
  }
  for (const [id, node] of Object.entries(data)) {
    if (!isRecord(node) || typeof node.class_type !== "string") {
      throw bad(
        `is not an API-format workflow: node "${id}" has no "class_type"`,
      );
    }
  }
  return { input: { workflow_json: data } };
}

/**
 * The benchmark payload from `BENCHMARK_JSON_PATH` (read now; a missing or
 * bad file is an error), else from `wellKnown` when that file exists and
 * holds a usable workflow, else `undefined`.
 *
 * @throws {ConfigError} when `BENCHMARK_JSON_PATH` cannot be used
 */
export function benchmarkFromFile(
  preset: string,
  env: EnvVars,
  wellKnown?: string,
): Payload | undefined {
  const path = env.BENCHMARK_JSON_PATH?.trim();
  if (path) {
    return benchmarkPayloadOf(
      preset,
      path,
      readJsonFile(preset, "BENCHMARK_JSON_PATH", path),
    );
  }
  if (!wellKnown) return undefined;
  try {
    if (!Deno.statSync(wellKnown).isFile) return undefined;
    const data = JSON.parse(Deno.readTextFileSync(wellKnown));
    return benchmarkPayloadOf(preset, wellKnown, data);
  } catch {
    // The image maintains this link; when it is absent or unusable the
    // built-in benchmark runs, as in the Python worker.
    return undefined;
  }
}

/** A copy of `payload` with a fresh `input.request_id`. */
export function withRequestId(payload: Payload): Payload {
  const copy = structuredClone(payload);
  const input = isRecord(copy.input) ? copy.input : {};
  input.request_id = `benchmark-${crypto.randomUUID()}`;
  return { ...copy, input };
}

/** What differs between the ComfyUI presets. */
export interface ComfyFlavor {
  name: string;
  workload: WorkloadCalculator | DeclarativeWorkload;
  /** Benchmark payload when no file is given. */
  benchmark: () => Payload;
  /** Benchmark runs unless `BENCHMARK_RUNS` says otherwise. */
  runs: number;
  /** Consult {@linkcode WELL_KNOWN_BENCHMARK}. */
  wellKnownBenchmark: boolean;
  /** Also ready on {@linkcode COMFYUI_READY_LINE} (templates that tail
   * ComfyUI's log, as the Python `wan` / `ace` workers do). */
  comfyReadyLine?: boolean;
}

/**
 * Builds the config of a ComfyUI preset.
 *
 * Readiness: the wrapper's `BACKENDS_READY` line (since 5bbf3e9,
 * 2026-05-08), or, for the older wrappers Vast's image may have cloned
 * (unpinned), ComfyUI's `/system_stats` and the wrapper's health URL both
 * answering 2xx (the Python worker's readiness shim), then the wrapper's
 * health URL as before. The probe of ComfyUI is needed: before d199153
 * (2025-12-05) the wrapper's `/health` says healthy whatever ComfyUI does.
 */
export function comfyConfig(
  flavor: ComfyFlavor,
  env: EnvVars,
): WorkerConfig {
  const fromFile = benchmarkFromFile(
    flavor.name,
    env,
    flavor.wellKnownBenchmark ? WELL_KNOWN_BENCHMARK : undefined,
  );
  const generator = fromFile
    ? () => withRequestId(fromFile)
    : () => withRequestId(flavor.benchmark());
  const server = modelServerFrom(flavor.name, env, {
    url: "http://127.0.0.1:18288",
    logFile: "/var/log/portal/api-wrapper.log",
    health: "/health",
    // A regex, not the substring: "BACKENDS_READY" is also the start of
    // the fatal "BACKENDS_READY_TIMEOUT", and load patterns match first.
    onLoad: [
      /\bBACKENDS_READY\b/,
      ...(flavor.comfyReadyLine ? [COMFYUI_READY_LINE] : []),
    ],
    onError: [
      "BACKENDS_READY_TIMEOUT",
      "BACKEND_UNRECOVERABLE",
      "Application startup failed",
    ],
    // The wrapper logs no traceback while it waits for ComfyUI: one
    // before ready is a failed start.
    onStartupError: ["Traceback (most recent call last):"],
    onInfo: [],
    supervisorProgram: "api-wrapper",
  });
  const comfy = (env.COMFYUI_API_BASE?.trim() || COMFYUI_BASE).replace(
    /\/+$/,
    "",
  );
  return {
    ...server,
    loadProbe: {
      urls: [`${comfy}/system_stats`, server.modelHealthUrl ?? "/health"],
    },
    handlers: [{
      route: "/generate/sync",
      allowParallelRequests: false,
      maxQueueTime: numberFrom(env.MAX_QUEUE_TIME, 10),
      workload: flavor.workload,
      requestParser: wrapComfyInput,
      failureBody: FAILED_JOB,
      benchmark: {
        generator,
        runs: numberFrom(env.BENCHMARK_RUNS, flavor.runs),
      },
    }],
  };
}

/** A ComfyUI preset of one kind of job: a workflow and its constant cost. */
export interface WorkflowPresetSpec {
  name: string;
  description: string;
  /** Workload of every request. */
  workload: number;
  /** A workflow for the one-run built-in benchmark. */
  workflow: () => Workflow;
}

/**
 * A preset whose every job costs the same (`constant <workload> per
 * request`), benchmarked once with `workflow()` unless `BENCHMARK_JSON_PATH`
 * names another.
 */
export function workflowPreset(spec: WorkflowPresetSpec): Preset {
  return {
    name: spec.name,
    description: spec.description,
    workloadRule: `constant ${spec.workload} per request`,
    envVars: COMFY_ENV_VARS,
    config: (env) =>
      comfyConfig({
        name: spec.name,
        workload: { kind: "constant", value: spec.workload },
        runs: 1,
        wellKnownBenchmark: false,
        comfyReadyLine: true,
        benchmark: () => ({ input: { workflow_json: spec.workflow() } }),
      }, env),
  };
}

/** One of `list`, at random. */
export function pick<T>(list: readonly T[]): T {
  return list[Math.floor(Math.random() * list.length)];
}
