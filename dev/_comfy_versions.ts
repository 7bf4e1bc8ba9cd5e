/**
 * The versions of ai-dock/comfyui-api-wrapper the ComfyUI stand-in
 * imitates, each named after the date of the upstream commit it follows,
 * and what changed between them (read in the wrapper's `main.py` and
 * `workers/generation_worker.py` at each commit). Vast's ComfyUI image
 * clones the wrapper unpinned, so any of them may run on an instance.
 *
 * | Version      | Commit  | `/health`                                  | Failed job         | `comfyui_response` | Full queue            | Ready line       |
 * | ------------ | ------- | ------------------------------------------ | ------------------ | ------------------ | --------------------- | ---------------- |
 * | `2025-10-06` | dfa863b | always 200 healthy                         | 200 `"failed"`     | full               | unbounded             | none             |
 * | `2025-12-05` | d199153 | 502 unless ComfyUI's `/system_stats` is 200 | 200 `"failed"`     | full               | unbounded             | none             |
 * | `2026-05-06` | 6a9d0be | 503 unless ComfyUI's HTTP and WS answer    | 200 `"failed"`     | `{}` unless asked  | 503 + `Retry-After: 5` | none             |
 * | `2026-05-08` | e1d04af | 503 unless every backend passes            | 500, 502 (connect) | `{}` unless asked  | 503 + `Retry-After: 5` | `BACKENDS_READY` |
 *
 * Since 3cf8714 (2026-05-06) the first job waits for ComfyUI (up to 120 s)
 * instead of failing at once with "Cannot connect to host", and a
 * workflow ComfyUI refuses reads `ComfyUI node errors: ...` instead of
 * `Network error posting to ComfyUI: 400, ...`; `timings` is filled since
 * 993d47f (2026-05-08).
 *
 * @module
 */

/** The wrapper versions, oldest first. */
export const WRAPPER_VERSIONS = [
  "2025-10-06",
  "2025-12-05",
  "2026-05-06",
  "2026-05-08",
] as const;

/** One of {@linkcode WRAPPER_VERSIONS}. */
export type WrapperVersion = typeof WRAPPER_VERSIONS[number];

/** What one wrapper version does. */
export interface WrapperTraits {
  /** The upstream commit imitated. */
  commit: string;
  /** How `/health` decides. */
  health: "always" | "system_stats" | "comfyui" | "backends";
  /** Failed jobs answer HTTP 200 (before 5352e36, 2026-05-07). */
  failedIs200: boolean;
  /** `comfyui_response` is `{}` unless asked for. */
  slimResult: boolean;
  /** A full queue answers 503 + `Retry-After: 5`. */
  backpressure: boolean;
  /** Logs `BACKENDS_READY` (and `BACKENDS_READY_TIMEOUT`). */
  readySignal: boolean;
  /** The first job waits for ComfyUI instead of failing at once. */
  waitsForComfy: boolean;
  /** `timings` is filled in. */
  timings: boolean;
}

// Each version as the change from the one before it.
const V2025_10_06: WrapperTraits = {
  commit: "dfa863b",
  health: "always",
  failedIs200: true,
  slimResult: false,
  backpressure: false,
  readySignal: false,
  waitsForComfy: false,
  timings: false,
};
const V2025_12_05: WrapperTraits = {
  ...V2025_10_06,
  commit: "d199153",
  health: "system_stats",
};
const V2026_05_06: WrapperTraits = {
  ...V2025_12_05,
  commit: "6a9d0be",
  health: "comfyui",
  slimResult: true,
  backpressure: true,
  waitsForComfy: true,
};
const V2026_05_08: WrapperTraits = {
  ...V2026_05_06,
  commit: "e1d04af",
  health: "backends",
  failedIs200: false,
  readySignal: true,
  timings: true,
};

const TRAITS: Record<WrapperVersion, WrapperTraits> = {
  "2025-10-06": V2025_10_06,
  "2025-12-05": V2025_12_05,
  "2026-05-06": V2026_05_06,
  "2026-05-08": V2026_05_08,
};

/** The traits of `version`. */
export function traitsOf(version: WrapperVersion): WrapperTraits {
  return TRAITS[version];
}

// Substrings that make 5352e36's `_http_status_for` answer 502, not 500.
const UPSTREAM_FAIL_HINTS = [
  "cannot connect",
  "failed to post workflow after",
  "network error",
  "connection refused",
  "websocket timeout",
  "websocket failure",
  "timed out",
];

/** The HTTP status of a finished job's Result under `traits`. */
export function statusOfResult(
  traits: WrapperTraits,
  status: string,
  message: string,
): number {
  if (status === "completed" || traits.failedIs200) return 200;
  if (status === "cancelled") return 499;
  const msg = message.toLowerCase();
  return UPSTREAM_FAIL_HINTS.some((h) => msg.includes(h)) ? 502 : 500;
}

/** ComfyUI's `/system_stats` body, as a 24 GB GPU reports it. */
export function systemStats(): Record<string, unknown> {
  return {
    system: {
      os: "posix",
      ram_total: 67_108_864_000,
      ram_free: 50_331_648_000,
      comfyui_version: "0.3.75",
      python_version: "3.12.11 (main, Jun  4 2025, 08:56:18) [GCC 11.4.0]",
      pytorch_version: "2.8.0+cu128",
      embedded_python: false,
      argv: [
        "main.py",
        "--disable-auto-launch",
        "--port",
        "18188",
        "--enable-cors-header",
      ],
    },
    devices: [{
      name: "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync",
      type: "cuda",
      index: 0,
      vram_total: 25_386_352_640,
      vram_free: 24_964_497_408,
      torch_vram_total: 0,
      torch_vram_free: 0,
    }],
  };
}

/** aiohttp's message when nothing listens at `hostPort`. */
export function cannotConnect(hostPort: string): string {
  const [host, port] = hostPort.split(":");
  return `Cannot connect to host ${hostPort} ssl:default [Connect call failed ('${host}', ${port})]`;
}

/** What `/health` needs to know. */
export interface HealthState {
  /** ComfyUI answers. */
  comfyUp: boolean;
  /** ComfyUI's `host:port`. */
  comfy: string;
  /** Jobs per queue. */
  queues: { preprocess: number; generation: number; postprocess: number };
}

/** The wrapper's `/health` answer under `traits`: status and body. */
export function healthAnswer(
  traits: WrapperTraits,
  s: HealthState,
): { status: number; body: Record<string, unknown> } {
  const up = s.comfyUp;
  const head = {
    status: up || traits.health === "always" ? "healthy" : "unhealthy",
    cache_type: "memory",
    queues: s.queues,
  };
  const http = up ? { http_ok: true, system_stats: systemStats() } : {
    http_ok: false,
    http_error: `connect failed: ${cannotConnect(s.comfy)}`,
  };
  const ws = up ? { websocket_ok: true } : {
    websocket_ok: false,
    websocket_error: cannotConnect(s.comfy),
  };
  const gpu = { unrecoverable: false, reason: "" };
  switch (traits.health) {
    case "always":
      return { status: 200, body: head };
    case "system_stats":
      return up
        ? {
          status: 200,
          body: { ...head, comfyui_system_stats: systemStats() },
        }
        : {
          status: 502,
          body: {
            ...head,
            comfyui_error: `Failed to connect to ComfyUI: ${
              cannotConnect(s.comfy)
            }`,
          },
        };
    case "comfyui":
      return {
        status: up ? 200 : 503,
        body: { ...head, comfyui: { ...http, ...ws }, gpu },
      };
    case "backends":
      return {
        status: up ? 200 : 503,
        body: {
          ...head,
          backends_healthy: up ? "1/1" : "0/1",
          gpu,
          backends: [{
            base: `http://${s.comfy}`,
            ...http,
            ...ws,
            gpu,
            healthy: up,
          }],
        },
      };
  }
}
