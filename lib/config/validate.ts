/**
 * Validating a worker config, with every problem listed by path, and the
 * JSON Schema editors use to autocomplete the YAML file. No YAML here: the
 * parser (an npm CommonJS package, ~5 MB and a good part of start-up) is
 * loaded only by `file.ts`, for `run --config`.
 *
 * @module
 */
import { z } from "zod";
import { type ResolvedWorkerConfig, WorkerConfigSchema } from "./schemas.ts";

/** A config that failed to load: every problem, one line each. */
export class ConfigError extends Error {
  /** Each problem as `path: message`. */
  readonly problems: readonly string[];

  /** Creates the error for `source` (a file name or "config"). */
  constructor(source: string, problems: readonly string[]) {
    super(
      `Invalid config ${source}:\n${problems.map((p) => `  ${p}`).join("\n")}`,
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Formats a Zod issue path as `handlers[1].route`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else {
      // A key that is not a plain name (spaces, line breaks) is quoted, so
      // each problem stays on one line.
      const k = String(key);
      const name = /^[A-Za-z_$][\w$-]*$/.test(k) ? k : JSON.stringify(k);
      out += out === "" ? name : `.${name}`;
    }
  }
  return out === "" ? "(root)" : out;
}

/** Lists every issue of a Zod error as `path: message`. */
export function formatIssues(error: z.ZodError): string[] {
  return error.issues.flatMap((issue) =>
    issue.code === "unrecognized_keys"
      ? issue.keys.map((k) => `${formatPath([...issue.path, k])}: unknown key`)
      : [`${formatPath(issue.path)}: ${issue.message}`]
  );
}

/**
 * Validates a config object (from TypeScript or parsed YAML).
 *
 * @throws {ConfigError} listing every problem with its path
 */
export function parseWorkerConfig(
  input: unknown,
  source = "config",
): ResolvedWorkerConfig {
  const result = WorkerConfigSchema.safeParse(input);
  if (!result.success) {
    throw new ConfigError(source, formatIssues(result.error));
  }
  return result.data;
}

/** JSON Schema (draft 2020-12) of the YAML config file. */
export function workerConfigJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(WorkerConfigSchema, {
    io: "input",
    unrepresentable: "any",
    override: (ctx) => {
      // Functions exist only in TypeScript configs: drop them from the schema.
      const def = ctx.zodSchema._zod.def;
      if (def.type === "custom") ctx.jsonSchema.not = {};
    },
  }) as Record<string, unknown>;
  return {
    ...schema,
    title: "edgeworker worker config",
    description: "Config file of `edgeworker run --config <file>`",
  };
}
