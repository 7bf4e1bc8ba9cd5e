/**
 * Payload validation, workflow checks and the Result envelope of the ComfyUI
 * API wrapper (ai-dock/comfyui-api-wrapper), for `comfyui_server.ts`.
 *
 * @module
 */

import { isObject, json } from "./_serve.ts";

/** A ComfyUI API-format graph: node id → `{class_type, inputs}`. */
export type Workflow = Record<string, unknown>;

/** A payload that passed the wrapper's pydantic model. */
export interface ComfyJob {
  /** `input.request_id`, or a fresh UUID. */
  requestId: string;
  /** `input.workflow_json` (mutually exclusive with `modifier`). */
  workflow?: Workflow;
  /** `input.modifier`, e.g. `Text2Image`. */
  modifier?: string;
  /** `input.modifications`. */
  modifications: Record<string, unknown>;
}

/** FastAPI's 422 body for one pydantic error. */
function detail(
  type: string,
  loc: (string | number)[],
  msg: string,
  input: unknown,
  ctx?: unknown,
): Response {
  return json(
    { detail: [{ type, loc, msg, input, ...(ctx ? { ctx } : {}) }] },
    422,
  );
}

/** Validates `{"input": {...}}` as the wrapper's `Payload` model does. */
export function parseComfyPayload(text: string): ComfyJob | Response {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return detail("json_invalid", ["body", 0], "JSON decode error", {}, {
      error: "Expecting value",
    });
  }
  if (!isObject(body) || body.input === undefined) {
    return detail("missing", ["body", "input"], "Field required", body);
  }
  const input = body.input;
  if (!isObject(input)) {
    return detail(
      "model_attributes_type",
      ["body", "input"],
      "Input should be a valid dictionary or object to extract fields from",
      input,
    );
  }
  for (const key of ["workflow_json", "modifications"] as const) {
    if (input[key] !== undefined && !isObject(input[key])) {
      return detail(
        "dict_type",
        ["body", "input", key],
        "Input should be a valid dictionary",
        input[key],
      );
    }
  }
  if (input.modifier !== undefined && typeof input.modifier !== "string") {
    return detail(
      "string_type",
      ["body", "input", "modifier"],
      "Input should be a valid string",
      input.modifier,
    );
  }
  const workflow =
    isObject(input.workflow_json) && Object.keys(input.workflow_json).length > 0
      ? input.workflow_json
      : undefined;
  const modifier = input.modifier || undefined;
  const modifications = isObject(input.modifications)
    ? input.modifications
    : {};
  const invalid = (msg: string): Response =>
    detail("value_error", ["body", "input"], `Value error, ${msg}`, input, {
      error: {},
    });
  if (workflow && modifier) {
    return invalid(
      "Cannot provide both workflow_json and modifier - they are mutually exclusive",
    );
  }
  if (!workflow && !modifier) {
    return invalid("Must provide either workflow_json OR modifier");
  }
  if (Object.keys(modifications).length > 0 && !modifier) {
    return invalid(
      "modifications can only be provided when modifier is specified",
    );
  }
  const requestId = typeof input.request_id === "string" && input.request_id
    ? input.request_id
    : crypto.randomUUID();
  return { requestId, workflow, modifier, modifications };
}

/** Builds the graph a modifier stands for (SD1.5 text-to-image). */
export function applyModifier(
  modifier: string,
  m: Record<string, unknown>,
): Workflow {
  if (modifier !== "Text2Image" && modifier !== "Image2Image") {
    throw new Error(`Unknown modifier '${modifier}'`);
  }
  return text2ImageWorkflow(m);
}

/**
 * An SD1.5 text-to-image API-format graph of `modifications` (`prompt`,
 * `width`, `height`, `steps`, `seed`, `batch_size`; 512×512, 20 steps, batch
 * 1 by default) whose images are saved as `<filenamePrefix>_NNNNN_.png`.
 */
export function text2ImageWorkflow(
  m: Record<string, unknown>,
  filenamePrefix = "ComfyUI",
): Workflow {
  return {
    "3": {
      class_type: "KSampler",
      inputs: {
        seed: m.seed ?? 1,
        steps: m.steps ?? 20,
        model: ["4", 0],
        latent_image: ["5", 0],
      },
    },
    "4": {
      class_type: "CheckpointLoaderSimple",
      inputs: { ckpt_name: "v1-5-pruned-emaonly.safetensors" },
    },
    "5": {
      class_type: "EmptyLatentImage",
      inputs: {
        width: m.width ?? 512,
        height: m.height ?? 512,
        batch_size: m.batch_size ?? 1,
      },
    },
    "6": {
      class_type: "CLIPTextEncode",
      inputs: { text: m.prompt ?? "", clip: ["4", 1] },
    },
    "8": {
      class_type: "VAEDecode",
      inputs: { samples: ["3", 0], vae: ["4", 2] },
    },
    "9": {
      class_type: "SaveImage",
      inputs: { filename_prefix: filenamePrefix, images: ["8", 0] },
    },
  };
}

const OUTPUT_NODES: Record<string, [string, string, string]> = {
  SaveImage: ["images", "output", "png"],
  PreviewImage: ["images", "temp", "png"],
  SaveAnimatedWEBP: ["images", "output", "webp"],
  SaveAnimatedPNG: ["images", "output", "png"],
  SaveAudio: ["audio", "output", "flac"],
  SaveAudioMP3: ["audio", "output", "mp3"],
  SaveVideo: ["images", "output", "mp4"],
  VHS_VideoCombine: ["gifs", "output", "mp4"],
};

/** One output node: id, kind (`images`…), file type and extension. */
export interface OutputNode {
  /** Node id. */
  id: string;
  /** Key under the node's outputs (`images`, `gifs`, `audio`). */
  kind: string;
  /** `output` or `temp` (previews, which the wrapper skips). */
  type: string;
  /** File extension. */
  ext: string;
  /** `filename_prefix` input. */
  prefix: string;
  /** Files it writes. */
  count: number;
}

/**
 * Checks a graph as ComfyUI's `POST /prompt` does; returns its output nodes
 * or ComfyUI's 400 error body.
 */
export function checkWorkflow(
  w: Workflow,
): OutputNode[] | Record<string, unknown> {
  const batch = Object.values(w).reduce<number>((n, node) => {
    const size = isObject(node) && isObject(node.inputs)
      ? node.inputs.batch_size
      : undefined;
    return typeof size === "number" && size > n ? size : n;
  }, 1);
  const outputs: OutputNode[] = [];
  for (const [id, node] of Object.entries(w)) {
    if (!isObject(node) || typeof node.class_type !== "string") {
      return {
        error: {
          type: "invalid_prompt",
          message:
            "Cannot execute because a node is missing the class_type property.",
          details: `Node ID '#${id}'`,
          extra_info: {},
        },
        node_errors: {},
      };
    }
    const out = OUTPUT_NODES[node.class_type];
    if (!out) continue;
    const inputs = isObject(node.inputs) ? node.inputs : {};
    const prefix = typeof inputs.filename_prefix === "string"
      ? inputs.filename_prefix
      : "ComfyUI";
    outputs.push({
      id,
      kind: out[0],
      type: out[1],
      ext: out[2],
      prefix,
      count: batch,
    });
  }
  if (outputs.length === 0) {
    return {
      error: {
        type: "prompt_no_outputs",
        message: "Prompt has no outputs",
        details: "",
        extra_info: {},
      },
      node_errors: {},
    };
  }
  return outputs;
}

/** Python's `json.dumps` spacing (`", "` and `": "`), for error texts. */
export function pyDumps(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(pyDumps).join(", ")}]`;
  if (isObject(v)) {
    return `{${
      Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${pyDumps(x)}`)
        .join(", ")
    }}`;
  }
  return JSON.stringify(v) ?? "null";
}

/**
 * Turns a job into its graph and output nodes, or the failure message the
 * wrapper puts in the Result (preprocessing errors, ComfyUI's 400 refusal:
 * `Network error posting to ComfyUI: 400, ...` before 3cf8714, 2026-05-06;
 * since then `ComfyUI node errors: <node_errors as JSON>`).
 */
export function prepareWorkflow(
  job: ComfyJob,
  comfyUrl: string,
  since2026 = true,
): { workflow: Workflow; outputs: OutputNode[] } | string {
  let workflow: Workflow;
  try {
    workflow = job.workflow ?? applyModifier(job.modifier!, job.modifications);
  } catch (e) {
    return `Preprocessing failed: ${(e as Error).message}`;
  }
  const outputs = checkWorkflow(workflow);
  if (Array.isArray(outputs)) return { workflow, outputs };
  if (since2026) {
    return `Generation failed: ComfyUI node errors: ${
      JSON.stringify(outputs.node_errors ?? {}, null, 2)
    }`;
  }
  return "Generation failed: Network error posting to ComfyUI: 400, " +
    `message='ComfyUI API error: ${
      pyDumps(outputs)
    }', url='${comfyUrl}/prompt'`;
}
