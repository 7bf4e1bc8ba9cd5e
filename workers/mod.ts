/**
 * Every preset, by name.
 *
 * @module
 */
import type { Preset } from "./_preset.ts";
import { vllm } from "./vllm.ts";

export type { EnvVars, Preset } from "./_preset.ts";

/** Presets in listing order. */
export const PRESETS: readonly Preset[] = [vllm];

/** The preset called `name`, or undefined. */
export function findPreset(name: string): Preset | undefined {
  return PRESETS.find((p) => p.name === name.trim().toLowerCase());
}
