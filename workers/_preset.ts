/**
 * What a preset is, and the env overrides every preset honours the way the
 * Python workers read them.
 *
 * @module
 */
import type { WorkerConfigInput } from "../lib/config.ts";

/** Environment variables as a plain record. */
export type EnvVars = Record<string, string | undefined>;

/** A named, ready-made worker config for one model server. */
export interface Preset {
  /** Name for `--preset` and `BACKEND`. */
  readonly name: string;
  /** One line for `edgeworker presets`. */
  readonly description: string;
  /** How the workload of a request is computed, for docs and listings. */
  readonly workloadRule: string;
  /** Builds the config from the environment. */
  config(env: EnvVars): WorkerConfigInput;
}

/** Newline-separated patterns (`MODEL_ERROR_LOG_MSGS`), or the defaults. */
export function patternsFrom(
  value: string | undefined,
  defaults: string[],
): string[] {
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
