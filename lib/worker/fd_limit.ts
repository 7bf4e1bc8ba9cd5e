/**
 * The open-file limit: every connection holds a descriptor, so the soft
 * limit (often 1024) caps how many clients a worker can hold. `deno run`
 * raises the soft limit to the hard one at start; a `deno compile` binary
 * does not, so the worker does it itself where it may: Linux, with FFI
 * permission (`-A`), through libc's `setrlimit`. Deno has no API for it.
 *
 * @module
 */

/** The limit after {@linkcode raiseFdLimit}. */
export interface FdLimit {
  soft: number;
  hard: number;
  /** The soft limit before, when it was raised. */
  raisedFrom?: number;
}

const RLIMIT_NOFILE = 7; // Linux
const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

/**
 * Raises the soft open-file limit to the hard limit.
 *
 * @returns the limits, or undefined where they cannot be read (not Linux,
 *   no FFI permission, no glibc)
 */
export function raiseFdLimit(): FdLimit | undefined {
  if (Deno.build.os !== "linux") return undefined;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return undefined;
  }
  let lib;
  try {
    lib = Deno.dlopen("libc.so.6", {
      getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
      setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
    });
  } catch {
    return undefined; // musl or no libc.so.6
  }
  try {
    // struct rlimit { rlim_t rlim_cur; rlim_t rlim_max; }, 64-bit each.
    const limits = new BigUint64Array(2);
    if (lib.symbols.getrlimit(RLIMIT_NOFILE, limits) !== 0) return undefined;
    const [soft, hard] = limits;
    const out: FdLimit = { soft: toNumber(soft), hard: toNumber(hard) };
    if (soft < hard && hard !== RLIM_INFINITY) {
      limits[0] = hard;
      if (lib.symbols.setrlimit(RLIMIT_NOFILE, limits) === 0) {
        out.raisedFrom = out.soft;
        out.soft = out.hard;
      }
    }
    return out;
  } finally {
    lib.close();
  }
}

function toNumber(v: bigint): number {
  return v === RLIM_INFINITY ? Infinity : Number(v);
}
