/**
 * The check every environment test makes of a refused value: `readEnv`
 * throws an `EnvError` with a problem line for the variable, and the
 * line says why.
 *
 * @module
 */
import assert from "node:assert/strict";
import { EnvError, readEnv } from "../../lib/config/env.ts";

/**
 * Asserts that `readEnv(env)` refuses `name` with a problem line
 * `NAME: …` (matching `why` when given).
 */
export function assertEnvRefused(
  env: Record<string, string>,
  name: string,
  why?: RegExp,
): void {
  assert.throws(
    () => readEnv(env),
    (e: unknown) => {
      assert.ok(e instanceof EnvError, String(e));
      const line = e.problems.find((p) => p.startsWith(`${name}: `));
      assert.ok(line, `no ${name} line in ${e.message}`);
      if (why) assert.match(line, why);
      return true;
    },
    JSON.stringify(env),
  );
}
