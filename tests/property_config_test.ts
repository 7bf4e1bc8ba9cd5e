/**
 * Property tests of the YAML config (`lib/config_file.ts`): any text, any
 * YAML document and any one change to a valid config either loads or fails
 * with a `ConfigError` whose problems are one line each, `path: message`,
 * naming the changed path (or the field a cross-field rule names). Never
 * another exception. Seeds: see `tests/chaos/fc_params.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { stringify } from "yaml";
import {
  ConfigError,
  formatPath,
  parseWorkerConfigYaml,
} from "../lib/config/file.ts";
import { fcParams } from "./chaos/fc_params.ts";

/** A valid config touching most keys. */
const VALID = {
  modelServerUrl: "http://127.0.0.1:18000",
  modelLogFile: "/var/log/model.log",
  modelHealthUrl: "/health",
  readiness: "both",
  readinessTimeout: 600,
  healthcheck: { intervalSeconds: 5, timeoutSeconds: 3, failureThreshold: 2 },
  logActions: {
    onLoad: ["Application startup complete."],
    onError: ["CUDA out of memory", { regex: "RuntimeError: .*" }],
    onInfo: [],
  },
  handlers: [
    {
      route: "/v1/completions",
      allowParallelRequests: true,
      maxQueueTime: 600,
      maxConcurrency: 8,
      workload: {
        kind: "tokens",
        fields: ["prompt"],
        outputFields: ["max_tokens"],
        defaultOutput: 16,
      },
      benchmark: { dataset: [{ prompt: "hi", max_tokens: 8 }], runs: 2 },
      timeouts: { firstByte: 5 },
    },
    {
      route: "/generate",
      upstreamRoute: "/gen",
      workload: {
        kind: "field",
        path: "parameters.max_new_tokens",
        default: 1,
      },
      unwrapInput: true,
    },
  ],
  maxSessions: 4,
  timeouts: { firstByte: 30, idle: 60, total: null },
  engineMetrics: { kind: "vllm", path: "/metrics", intervalSeconds: 5 },
};

/** Paths that cross-field rules report on, whatever was changed. */
const CROSS_FIELD =
  /^(modelLogFile|modelHealthUrl|handlers|handlers\[\d+\]\.route)$/;

/** Loads `text`; checks that a failure is a clear ConfigError. */
function load(
  text: string,
): { ok: true } | { ok: false; problems: readonly string[] } {
  try {
    parseWorkerConfigYaml(text, "prop.yaml");
    return { ok: true };
  } catch (e) {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
    assert.ok(e.problems.length > 0, "a ConfigError without problems");
    assert.match(e.message, /^Invalid config prop\.yaml:\n/);
    for (const p of e.problems) {
      assert.ok(
        !p.includes("\n"),
        `a problem over several lines: ${JSON.stringify(p)}`,
      );
      assert.match(p, /^.+: \S/s, `not "path: message": ${JSON.stringify(p)}`);
    }
    return { ok: false, problems: e.problems };
  }
}

Deno.test("any text loads or fails with a clear ConfigError", () => {
  const yamlish = fc.array(
    fc.tuple(
      fc.constantFrom(
        ...Object.keys(VALID),
        "handlers[0]",
        "- route",
        "  route",
        "unknown",
      ),
      fc.oneof(
        fc.string({ unit: "binary" }),
        fc.jsonValue().map((v) => JSON.stringify(v)),
      ),
    ).map(([k, v]) => `${k}: ${v}`),
  ).map((lines) => lines.join("\n"));
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit: "binary" }), yamlish), (text) => {
      load(text);
    }),
    fcParams(400),
  );
});

Deno.test("any YAML document loads or fails with a clear ConfigError", () => {
  fc.assert(
    fc.property(fc.oneof(fc.jsonValue(), fc.anything()), (doc) => {
      let text: string;
      try {
        text = stringify(doc);
      } catch {
        return; // not representable in YAML
      }
      load(text);
    }),
    fcParams(300),
  );
});

type Path = (string | number)[];

/** Every path of a JSON value (objects and arrays, not the root). */
function paths(v: unknown, at: Path = []): Path[] {
  if (v === null || typeof v !== "object") return [];
  const keys = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
  return keys.flatMap((k) => {
    const p = [...at, k];
    return [p, ...paths((v as Record<string | number, unknown>)[k], p)];
  });
}

/** A copy of `root` with `fn` applied to the parent of `path`. */
function change(
  root: unknown,
  path: Path,
  fn: (parent: Record<string | number, unknown>, key: string | number) => void,
): unknown {
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let node = copy;
  for (const k of path.slice(0, -1)) {
    node = node[k] as Record<string | number, unknown>;
  }
  fn(node, path[path.length - 1]);
  return copy;
}

/** The path a problem line names (`handlers[0].route: ...` → that). */
function problemPath(p: string): string {
  return p.slice(0, p.indexOf(": "));
}

Deno.test("one change to a valid config loads or names the changed path", () => {
  assert.deepEqual(load(stringify(VALID)), { ok: true });
  const all = paths(VALID);
  const mutation = fc.oneof(
    fc.record({
      kind: fc.constant("replace" as const),
      path: fc.constantFrom(...all),
      value: fc.jsonValue(),
    }),
    fc.record({
      kind: fc.constant("delete" as const),
      path: fc.constantFrom(...all),
    }),
    fc.record({
      kind: fc.constant("add" as const),
      path: fc.constantFrom(
        ...all.filter((p) => typeof p[p.length - 1] === "string"),
      ),
      // Any name: a typo, or a quoted key with spaces or a line break.
      key: fc.oneof(
        fc.string({ minLength: 1, maxLength: 12 }),
        fc.string({ unit: "binary", minLength: 1, maxLength: 12 }),
      ),
    }),
  );
  fc.assert(
    fc.property(mutation, (m) => {
      let target: Path = m.path;
      const doc = change(VALID, m.path, (parent, key) => {
        if (m.kind === "replace") parent[key] = m.value;
        else if (m.kind === "delete") {
          if (Array.isArray(parent)) parent.splice(Number(key), 1);
          else delete parent[key];
        } else {
          // A new key beside an existing one (unknown unless it exists).
          fc.pre(!(m.key in parent) && !Array.isArray(parent));
          parent[m.key] = 1;
          target = [...m.path.slice(0, -1), m.key];
        }
      });
      const r = load(stringify(doc));
      if (r.ok) return;
      const changed = formatPath(target);
      const related = r.problems.some((p) => {
        const at = problemPath(p);
        return changed.startsWith(at) || at.startsWith(changed) ||
          at === "(root)" || CROSS_FIELD.test(at);
      });
      assert.ok(
        related,
        `changed ${changed}, problems ${JSON.stringify(r.problems)}`,
      );
    }),
    fcParams(400),
  );
});
