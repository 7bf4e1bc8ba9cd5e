/**
 * The permissions the worker runs with, in one place: `deno task compile`
 * bakes them into every binary, the bundle's end-to-end test runs the
 * bundle with exactly these (so a missing one fails there), and README
 * lists them. Nothing is `-A`.
 *
 * Why each one (read from the code, see README "Permissions"):
 * - net: listens on `WORKER_PORT`/`WORKER_HTTP_PORT` and connects to the
 *   model server and every `REPORT_ADDR`, all set at run time.
 * - env: `Deno.env.toObject()` (presets and env settings read everything).
 * - read: the working directory (`.has_benchmark`, a `--config` file, a
 *   `BENCHMARK_JSON_PATH`, `EDGEWORKER_PUBKEY_FILE` next to it), model logs
 *   under `/var/log` (`/var/log/portal/*.log`, `/var/log/supervisor`) and
 *   `/workspace` (`infer.log`), the TLS files and the ComfyUI wrapper's
 *   benchmark workflow (workers/_comfy.ts).
 * - write: the working directory (`.has_benchmark` and its
 *   `.has_benchmark.<pid>.tmp`, renamed over it) and `/.force_update`
 *   (`POST /pyworker/update`).
 * - run: `df` (lib/autoscaler/disk_usage.ts measures disk usage with it)
 *   and `cat` (lib/traffic/client_gone.ts reads /proc/net/tcp through it:
 *   Deno opens nothing under /proc without --allow-all).
 * - sys: none is called (`Deno.memoryUsage()` needs no permission).
 *
 * Not granted, because Deno cannot grant it short of `--allow-all`: on
 * Linux every path under `/proc`, `/sys` and `/dev` needs `--allow-all`
 * whatever `--allow-read` says (deno_permissions `check_special_file`), so
 * lib/traffic/client_gone.ts cannot read `/proc/net/tcp{,6}`. It logs that
 * once and leaves noticing departed clients to `Deno.serve` and the request
 * timeouts (README "Permissions").
 *
 * Relative paths (`.`) are kept as written in a compiled binary's metadata
 * and resolved against the directory it is started in.
 *
 * @module
 */

/** Files and directories the worker reads. */
export const WORKER_READ: readonly string[] = [
  ".",
  "/var/log",
  "/workspace",
  "/etc/instance.crt",
  "/etc/instance.key",
  "/opt/comfyui-api-wrapper/workflows",
];

/** Files and directories the worker writes. */
export const WORKER_WRITE: readonly string[] = [".", "/.force_update"];

/** Programs the worker runs. */
export const WORKER_RUN: readonly string[] = ["df", "cat"];

/** Permission flags of `deno run` / `deno compile`, in one list. */
export const WORKER_PERMISSION_FLAGS: readonly string[] = [
  "--allow-net",
  "--allow-env",
  `--allow-read=${WORKER_READ.join(",")}`,
  `--allow-write=${WORKER_WRITE.join(",")}`,
  `--allow-run=${WORKER_RUN.join(",")}`,
  // A missing permission is an error, never a question on a terminal.
  "--no-prompt",
];

/** Runtime flags besides permissions (the bundle does not carry
 * deno.json's `unstable` list). */
export const WORKER_RUNTIME_FLAGS: readonly string[] = [
  "--unstable-no-legacy-abort",
  // V8 grows its young generation up to 3 × 32 MiB under load and keeps it.
  // 16 MiB semi-spaces hold RSS after load to ~160 MB (32: ~188, 8: ~145)
  // at a CPU cost per request of about 10 µs over 32 (8: about 20 µs, the
  // scavenges of a smaller nursery): README "Benchmark".
  "--v8-flags=--max-semi-space-size=16",
];

/**
 * Environment the worker is started with besides its settings: Deno then
 * answers SIGUSR2 with `malloc_trim` and a V8 low-memory GC, which the
 * worker sends itself once a burst of requests is over
 * (lib/worker/memory_trim.ts). A compiled binary cannot carry it:
 * templates/start.sh exports it, the `start` and `dev` tasks and the bench
 * set it too.
 */
export const WORKER_RUNTIME_ENV: Readonly<Record<string, string>> = {
  DENO_USR2_MEMORY_TRIM: "1",
};

if (import.meta.main) {
  // `deno run tools/permissions.ts` prints the flags, one a line.
  console.log([...WORKER_RUNTIME_FLAGS, ...WORKER_PERMISSION_FLAGS].join("\n"));
}
