/**
 * Secrets out of what the worker shows: `/status` is unauthenticated, and
 * the last report it echoes carries `MASTER_TOKEN` (`mtoken`), which opens
 * `/pyworker/update` and lets anyone post reports as this worker.
 *
 * @module
 */

/** Keys whose values are secrets wherever they appear. */
export const SECRET_KEYS: ReadonlySet<string> = new Set([
  "mtoken",
  "signature",
  "session_auth",
  "authorization",
]);

/**
 * A copy of a JSON-like value without the {@linkcode SECRET_KEYS}, at any
 * depth. Dropped rather than masked: a masked value still reads as data.
 */
export function withoutSecrets<T>(value: T): T {
  if (Array.isArray(value)) return value.map(withoutSecrets) as T;
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (!SECRET_KEYS.has(k.toLowerCase())) out[k] = withoutSecrets(v);
  }
  return out as T;
}
