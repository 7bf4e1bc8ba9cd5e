/**
 * What a preset is, and the env overrides every preset honours the way the
 * Python workers read them.
 *
 * @module
 */
import type { WorkerConfigInput } from "../lib/config.ts";
import { ConfigError } from "../lib/config_file.ts";

/** Environment variables as a plain record. */
export type EnvVars = Record<string, string | undefined>;

/** A named, ready-made worker config for one model server. */
export interface Preset {
  /** Name for `--preset` and `BACKEND`. */
  readonly name: string;
  /** Other names accepted, e.g. the Python worker's `BACKEND` value. */
  readonly aliases?: readonly string[];
  /** One line for `edgeworker presets`. */
  readonly description: string;
  /** How the workload of a request is computed, for docs and listings. */
  readonly workloadRule: string;
  /** Environment variables the preset reads besides the common ones. */
  readonly envVars?: readonly string[];
  /**
   * Builds the config from the environment.
   *
   * @throws {ConfigError} when a variable is missing or unusable
   */
  config(env: EnvVars): WorkerConfigInput;
}

/** Readiness modes a preset accepts from `READINESS`. */
export type ReadinessMode = "logs" | "healthcheck" | "both" | "none";

const READINESS_MODES: readonly ReadinessMode[] = [
  "logs",
  "healthcheck",
  "both",
  "none",
];

/** A {@linkcode ConfigError} naming the preset and the variable at fault. */
export function presetError(
  preset: string,
  ...problems: string[]
): ConfigError {
  return new ConfigError(`preset ${preset}`, problems);
}

/** Newline-separated patterns (`MODEL_ERROR_LOG_MSGS`), or the defaults. */
export function patternsFrom<T>(
  value: string | undefined,
  defaults: T[],
): (string | T)[] {
  if (value === undefined || value.trim() === "") return defaults;
  return value.split("\n").map((l) => l.trim()).filter((l) => l !== "");
}

/** `MODEL_SERVER_URL` or the preset's default. */
export function modelServerUrlFrom(env: EnvVars, fallback: string): string {
  return env.MODEL_SERVER_URL?.trim() || fallback;
}

/** A positive number from the environment, or the default. */
export function numberFrom(
  value: string | undefined,
  fallback: number,
): number {
  const n = Number(value);
  return value !== undefined && value.trim() !== "" && Number.isFinite(n) &&
      n > 0
    ? n
    : fallback;
}

/** A Python `strtobool`-style flag from the environment, or the default. */
export function booleanFrom(
  value: string | undefined,
  fallback: boolean,
): boolean {
  const v = value?.trim().toLowerCase();
  if (v === undefined || v === "") return fallback;
  if (["true", "1", "yes", "y", "on", "t"].includes(v)) return true;
  if (["false", "0", "no", "n", "off", "f"].includes(v)) return false;
  return fallback;
}

/**
 * `READINESS` (as the 2026 openai worker reads it), or the preset's mode.
 *
 * @throws {ConfigError} for a value that is not a readiness mode
 */
export function readinessFrom(
  preset: string,
  env: EnvVars,
  fallback: ReadinessMode,
): ReadinessMode {
  const v = env.READINESS?.trim().toLowerCase();
  if (!v) return fallback;
  if ((READINESS_MODES as readonly string[]).includes(v)) {
    return v as ReadinessMode;
  }
  throw presetError(
    preset,
    `READINESS: expected one of ${
      READINESS_MODES.join(", ")
    }, got "${env.READINESS}"`,
  );
}

/**
 * Reads and parses a JSON file while the config is built (so a bad path is
 * reported at start, not at the first benchmark).
 *
 * @throws {ConfigError} naming `variable` when the file is missing or bad
 */
export function readJsonFile(
  preset: string,
  variable: string,
  path: string,
): unknown {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw presetError(
      preset,
      `${variable}: cannot read ${path}: ${
        e instanceof Error ? e.message : String(e)
      }`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw presetError(
      preset,
      `${variable}: ${path} is not valid JSON: ${
        e instanceof Error ? e.message : String(e)
      }`,
    );
  }
}

/** A plain JSON object (not an array, not null). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A finite number `>= 0`, or undefined. */
export function finiteNumber(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : undefined;
}
