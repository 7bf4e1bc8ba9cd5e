/**
 * Loading a worker config from YAML, with every problem listed by path.
 * Validation and the JSON Schema live in `validate.ts` (re-exported here),
 * which the worker uses without loading the YAML parser.
 *
 * @module
 */
import { parse as parseYaml, YAMLParseError } from "yaml";
import type { ResolvedWorkerConfig } from "./schemas.ts";
import { ConfigError, parseWorkerConfig } from "./validate.ts";

export {
  ConfigError,
  formatIssues,
  formatPath,
  parseWorkerConfig,
  workerConfigJsonSchema,
} from "./validate.ts";

/**
 * Parses YAML text into a validated config.
 *
 * @throws {ConfigError} for YAML syntax errors and schema problems
 */
export function parseWorkerConfigYaml(
  text: string,
  source = "config",
): ResolvedWorkerConfig {
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (e) {
    const where = e instanceof YAMLParseError && e.linePos
      ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}`
      : "(yaml)";
    const message = e instanceof Error ? e.message.split("\n")[0] : String(e);
    throw new ConfigError(source, [`${where}: ${message}`]);
  }
  return parseWorkerConfig(data, source);
}

/**
 * Reads and validates a YAML config file.
 *
 * @throws {ConfigError} when the file is missing, unreadable or invalid
 */
export async function loadWorkerConfigFile(
  path: string,
): Promise<ResolvedWorkerConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const cause = e instanceof Error ? e.message : String(e);
    throw new ConfigError(path, [`(file): cannot read: ${cause}`]);
  }
  return parseWorkerConfigYaml(text, path);
}
