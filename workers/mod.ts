/**
 * Every preset, by name.
 *
 * @module
 */
import type { Preset } from "./_preset.ts";
import { ace } from "./ace.ts";
import { comfyui } from "./comfyui.ts";
import { generic } from "./generic.ts";
import { helloWorld } from "./hello_world.ts";
import { llamaCpp } from "./llama_cpp.ts";
import { nullPreset } from "./null.ts";
import { sglang } from "./sglang.ts";
import { tgi } from "./tgi.ts";
import { vllm } from "./vllm.ts";
import { wan } from "./wan.ts";

export type { EnvVars, Preset } from "./_preset.ts";

/** Presets in listing order. */
export const PRESETS: readonly Preset[] = [
  vllm,
  sglang,
  llamaCpp,
  tgi,
  comfyui,
  wan,
  ace,
  helloWorld,
  nullPreset,
  generic,
];

/** The preset called `name` (or one of its aliases), or undefined. */
export function findPreset(name: string): Preset | undefined {
  const wanted = name.trim().toLowerCase();
  return PRESETS.find((p) =>
    p.name === wanted || (p.aliases ?? []).includes(wanted)
  );
}
