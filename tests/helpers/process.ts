/**
 * Ending a subprocess a test started: a signal to a child that may be gone
 * already, and the SIGTERM-then-SIGKILL stop.
 *
 * @module
 */

/** Sends `signal` to `child`; a child that has already exited is no error. */
export function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch { /* already exited */ }
}

/**
 * SIGTERM, then SIGKILL if `status` has not settled after `graceMs`;
 * resolves to `status`.
 */
export async function terminate<T>(
  child: Deno.ChildProcess,
  status: Promise<T>,
  graceMs: number,
): Promise<T> {
  kill(child, "SIGTERM");
  const timer = setTimeout(() => kill(child, "SIGKILL"), graceMs);
  try {
    return await status;
  } finally {
    clearTimeout(timer);
  }
}
