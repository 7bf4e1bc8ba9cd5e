/**
 * Wan 2.2 text-to-video on ComfyUI (Vast's Wan template): the `comfyui`
 * preset's wrapper, route, log grammar and error choices, with a constant
 * workload of 10000 per video (as the Python `wan` worker) and a one-run
 * benchmark of a Wan 2.2 T2V workflow: the two-expert (high/low noise)
 * 14B pipeline, 640×640, 81 frames, 20 steps split 10/10, `noise_seed`
 * left as `"__RANDOM_INT__"` for the wrapper to fill.
 *
 * `BENCHMARK_JSON_PATH` replaces the built-in workflow (checked at start).
 * The workload stays constant: video jobs of one template cost about the
 * same, and a constant keeps `cost` and workload trivially consistent.
 *
 * @module
 */
import { pick, type Workflow, workflowPreset } from "./_comfy.ts";
import type { Preset } from "./_preset.ts";

/** Workload of one Wan video. */
export const WAN_WORKLOAD = 10000;

const PROMPTS = [
  "a paper boat drifting down a rain-soaked street, cinematic tracking shot",
  "a hummingbird hovering at a red flower, slow motion, shallow depth of field",
  "waves rolling onto a black sand beach at sunrise, aerial drone shot",
];

const NEGATIVE =
  "static, blurry details, subtitles, worst quality, low quality, jpeg artifacts, deformed";

/** A Wan 2.2 T2V API-format workflow for `prompt`. */
export function wanWorkflow(prompt: string): Workflow {
  const sampler = (
    model: string,
    latent: [string, number],
    first: boolean,
  ) => ({
    class_type: "KSamplerAdvanced",
    inputs: {
      add_noise: first ? "enable" : "disable",
      noise_seed: first ? "__RANDOM_INT__" : 0,
      steps: 20,
      cfg: 3.5,
      sampler_name: "euler",
      scheduler: "simple",
      start_at_step: first ? 0 : 10,
      end_at_step: first ? 10 : 10000,
      return_with_leftover_noise: first ? "enable" : "disable",
      model: [model, 0],
      positive: ["6", 0],
      negative: ["7", 0],
      latent_image: latent,
    },
  });
  return {
    "37": {
      class_type: "UNETLoader",
      inputs: {
        unet_name: "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
        weight_dtype: "default",
      },
    },
    "56": {
      class_type: "UNETLoader",
      inputs: {
        unet_name: "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors",
        weight_dtype: "default",
      },
    },
    "38": {
      class_type: "CLIPLoader",
      inputs: {
        clip_name: "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
        type: "wan",
        device: "default",
      },
    },
    "39": {
      class_type: "VAELoader",
      inputs: { vae_name: "wan_2.1_vae.safetensors" },
    },
    "54": {
      class_type: "ModelSamplingSD3",
      inputs: { shift: 8, model: ["37", 0] },
    },
    "55": {
      class_type: "ModelSamplingSD3",
      inputs: { shift: 8, model: ["56", 0] },
    },
    "6": {
      class_type: "CLIPTextEncode",
      inputs: { text: prompt, clip: ["38", 0] },
    },
    "7": {
      class_type: "CLIPTextEncode",
      inputs: { text: NEGATIVE, clip: ["38", 0] },
    },
    "59": {
      class_type: "EmptyHunyuanLatentVideo",
      inputs: { width: 640, height: 640, length: 81, batch_size: 1 },
    },
    "57": sampler("54", ["59", 0], true),
    "58": sampler("55", ["57", 0], false),
    "8": {
      class_type: "VAEDecode",
      inputs: { samples: ["58", 0], vae: ["39", 0] },
    },
    "60": {
      class_type: "CreateVideo",
      inputs: { fps: 16, images: ["8", 0] },
    },
    "61": {
      class_type: "SaveVideo",
      inputs: {
        filename_prefix: "video/ComfyUI",
        format: "auto",
        codec: "auto",
        video: ["60", 0],
      },
    },
  };
}

/** The Wan 2.2 preset. */
export const wan: Preset = workflowPreset({
  name: "wan",
  description: "Wan 2.2 text-to-video on ComfyUI (/generate/sync, FIFO)",
  workload: WAN_WORKLOAD,
  workflow: () => wanWorkflow(pick(PROMPTS)),
});
