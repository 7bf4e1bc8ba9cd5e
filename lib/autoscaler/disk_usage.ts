/**
 * Disk space used on a mount, for the autoscaler's `additional_disk_usage`.
 *
 * Deno has no `statfs`, so this runs `df -Pk` as a child process: the event
 * loop is never blocked, and a hung `df` is killed after a timeout.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";

const logger = getLogger(["edgeworker", "disk"]);

/** Bytes in the "GB" the Python worker reports (`used / 2**30`, i.e. GiB). */
const BYTES_PER_GB = 2 ** 30;

/** Last good value per path: what a failed measurement returns. */
const lastGb = new Map<string, number>();
/** Paths whose failure has been logged, so a broken `df` is logged once. */
const warned = new Set<string>();

/** Options of {@linkcode diskUsedGb}. */
export interface DiskUsageOptions {
  /**
   * Kills `df` after this long (a stale network mount can hang it).
   * @default {5000}
   */
  timeoutMs?: number;
}

/**
 * Parses the output of `df -Pk <path>` into KiB used, or `undefined` when
 * the output has no data line. The columns are found from the right-hand
 * numeric run (`blocks used available capacity%`), so a file system or mount
 * name with spaces does not shift them.
 *
 * @example
 * ```ts
 * import { parseDfUsedKib } from "./disk_usage.ts";
 * parseDfUsedKib("Filesystem 1024-blocks Used Available Capacity Mounted on\n" +
 *   "/dev/vda 264212084 22823832 83567080 22% /\n"); // 22823832
 * ```
 */
export function parseDfUsedKib(output: string): number | undefined {
  const lines = output.split("\n").slice(1);
  for (const line of lines) {
    const m = /\s(\d+)\s+(\d+)\s+(\d+)\s+(\d+|-)%?\s/.exec(` ${line} `);
    if (m) return Number(m[2]);
  }
  return undefined;
}

/**
 * Space used on the file system holding `path`, in GB of 2^30 bytes (as
 * Python's `psutil.disk_usage(path).used / 2**30`). Never throws: on error
 * it logs once per path and returns the previous value, or `NaN` when no
 * measurement of that path ever succeeded.
 *
 * @example
 * ```ts
 * import { diskUsedGb } from "./disk_usage.ts";
 * const gb = await diskUsedGb("/");
 * ```
 */
export async function diskUsedGb(
  path = "/",
  options: DiskUsageOptions = {},
): Promise<number> {
  try {
    const out = await new Deno.Command("df", {
      args: ["-Pk", path],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
      env: { LC_ALL: "C" },
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim();
      throw new Error(`df exited with ${out.code}: ${err || text.trim()}`);
    }
    const kib = parseDfUsedKib(text);
    if (kib === undefined) throw new Error(`unexpected df output: ${text}`);
    const gb = (kib * 1024) / BYTES_PER_GB;
    lastGb.set(path, gb);
    warned.delete(path);
    return gb;
  } catch (error) {
    if (!warned.has(path)) {
      warned.add(path);
      logger.warn("Cannot measure disk usage of {path}: {error}", {
        path,
        error: error instanceof Error ? error.message : String(error),
      });
    }
    return lastGb.get(path) ?? NaN;
  }
}
