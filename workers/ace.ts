/**
 * ACE-Step text-to-music on ComfyUI (Vast's ACE-Step template): the
 * `comfyui` preset's wrapper, route, log grammar and error choices, with a
 * constant workload of 1000 per song (as the Python `ace` worker) and a
 * one-run benchmark of an ACE-Step v1 3.5B workflow: 180 s of audio, 65
 * steps, saved as MP3, `seed` left as `"__RANDOM_INT__"` for the wrapper.
 *
 * `BENCHMARK_JSON_PATH` replaces the built-in workflow (checked at start).
 *
 * @module
 */
import { pick, type Workflow, workflowPreset } from "./_comfy.ts";
import type { Preset } from "./_preset.ts";

/** Workload of one ACE-Step song. */
export const ACE_WORKLOAD = 1000;

const SONGS: readonly { tags: string; lyrics: string }[] = [
  {
    tags: "funk, pop, soul, groovy bass, bright brass, 105 bpm",
    lyrics:
      "[verse]\nCity lights are calling out my name\n[chorus]\nWe keep on moving, moving all night long",
  },
  {
    tags: "acoustic folk, warm guitar, gentle female vocal, 80 bpm",
    lyrics:
      "[verse]\nMorning rain upon the window pane\n[chorus]\nHome is where the river bends",
  },
];

/** An ACE-Step API-format workflow for `tags` and `lyrics`. */
export function aceWorkflow(tags: string, lyrics: string): Workflow {
  return {
    "40": {
      class_type: "CheckpointLoaderSimple",
      inputs: { ckpt_name: "ace_step_v1_3.5b.safetensors" },
    },
    "14": {
      class_type: "TextEncodeAceStepAudio",
      inputs: { tags, lyrics, lyrics_strength: 0.99, clip: ["40", 1] },
    },
    "44": {
      class_type: "ConditioningZeroOut",
      inputs: { conditioning: ["14", 0] },
    },
    "17": {
      class_type: "EmptyAceStepLatentAudio",
      inputs: { seconds: 180, batch_size: 1 },
    },
    "51": {
      class_type: "ModelSamplingSD3",
      inputs: { shift: 5, model: ["40", 0] },
    },
    "50": {
      class_type: "LatentOperationTonemapReinhard",
      inputs: { multiplier: 1 },
    },
    "49": {
      class_type: "LatentApplyOperationCFG",
      inputs: { model: ["51", 0], operation: ["50", 0] },
    },
    "52": {
      class_type: "KSampler",
      inputs: {
        seed: "__RANDOM_INT__",
        steps: 65,
        cfg: 4,
        sampler_name: "res_multistep",
        scheduler: "simple",
        denoise: 1,
        model: ["49", 0],
        positive: ["14", 0],
        negative: ["44", 0],
        latent_image: ["17", 0],
      },
    },
    "18": {
      class_type: "VAEDecodeAudio",
      inputs: { samples: ["52", 0], vae: ["40", 2] },
    },
    "59": {
      class_type: "SaveAudioMP3",
      inputs: {
        filename_prefix: "audio/ComfyUI",
        quality: "V0",
        audio: ["18", 0],
      },
    },
  };
}

/** The ACE-Step preset. */
export const ace: Preset = workflowPreset({
  name: "ace",
  description: "ACE-Step text-to-music on ComfyUI (/generate/sync, FIFO)",
  workload: ACE_WORKLOAD,
  workflow: () => {
    const song = pick(SONGS);
    return aceWorkflow(song.tags, song.lyrics);
  },
});
