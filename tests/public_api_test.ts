/**
 * The published surface: the `./client` subpath pulls in none of the
 * worker's dependencies, `mod.ts` exports no Zod schema, and a config
 * written with the Python SDK's type names validates.
 *
 * @module
 */
import assert from "node:assert/strict";
import * as mod from "../mod.ts";
import type {
  BenchmarkConfig,
  HandlerConfig,
  LogActionConfig,
  ResolvedWorkerConfig,
  WorkerConfig,
} from "../mod.ts";
import { parseWorkerConfig, workerConfigJsonSchema } from "../mod.ts";

const ROOT = new URL("../", import.meta.url);

/** Runs `deno <args>` in the repo and parses its JSON output. */
async function denoJson(args: string[]): Promise<unknown> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `deno ${args.join(" ")} failed: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

interface InfoModule {
  specifier: string;
  dependencies?: {
    specifier: string;
    code?: { specifier?: string };
    type?: { specifier?: string };
  }[];
}

interface Info {
  modules: InfoModule[];
  redirects: Record<string, string>;
}

/** Every specifier in `deno info --json <entry>`: modules, imports, redirects. */
async function moduleGraph(entry: string): Promise<Set<string>> {
  const info = await denoJson(["info", "--json", entry]) as Info;
  const seen = new Set<string>();
  for (const m of info.modules) {
    seen.add(m.specifier);
    for (const d of m.dependencies ?? []) {
      seen.add(d.specifier);
      if (d.code?.specifier) seen.add(d.code.specifier);
      if (d.type?.specifier) seen.add(d.type.specifier);
    }
  }
  for (const [from, to] of Object.entries(info.redirects)) {
    seen.add(from);
    seen.add(to);
  }
  return seen;
}

/** `hono`, `zod`, `yaml`, `@logtape/...` as npm specifiers or bare names. */
const WORKER_DEPS = /^(npm:\/?)?(hono|zod|yaml|@logtape\/[^@/]+)(@|\/|$)/;

Deno.test("./client imports no hono, zod, yaml or logtape, and nothing outside lib/client and lib/std", async () => {
  const graph = await moduleGraph("client.ts");
  const heavy = [...graph].filter((s) => WORKER_DEPS.test(s));
  assert.deepEqual(heavy, []);
  const clientDir = new URL("lib/client/", ROOT).href;
  const stdDir = new URL("lib/std/", ROOT).href;
  const outside = [...graph].filter((s) =>
    s.startsWith("file:") && s !== new URL("client.ts", ROOT).href &&
    !s.startsWith(clientDir) && !s.startsWith(stdDir)
  );
  assert.deepEqual(outside, []);

  // The same walk over mod.ts does see them: the check above is not blind.
  const full = [...await moduleGraph("mod.ts")].filter((s) =>
    WORKER_DEPS.test(s)
  );
  for (const dep of ["hono", "zod", "yaml", "@logtape/logtape"]) {
    assert.ok(
      full.some((s) => s.includes(dep)),
      `mod.ts graph lacks ${dep}: ${full.join(", ")}`,
    );
  }
});

Deno.test("mod.ts exports no Zod schema and no *Input type", async () => {
  const zodLike = Object.entries(mod).filter(([, v]) =>
    v !== null && typeof v === "object" && "safeParse" in v
  ).map(([k]) => k);
  assert.deepEqual(zodLike, []);

  const doc = await denoJson(["doc", "--json", "mod.ts"]) as {
    nodes: Record<string, { symbols: { name: string }[] }>;
  };
  const names = Object.values(doc.nodes).flatMap((n) =>
    n.symbols.map((s) => s.name)
  );
  assert.deepEqual(
    names.filter((n) =>
      (/Schema$/.test(n) && n !== "workerConfigJsonSchema") ||
      /Input$/.test(n)
    ),
    [],
  );
  for (
    const name of [
      "WorkerConfig",
      "HandlerConfig",
      "BenchmarkConfig",
      "LogActionConfig",
      "ResolvedWorkerConfig",
      "ResolvedHandlerConfig",
      "ResolvedBenchmarkConfig",
      "ResolvedLogActionConfig",
      "EdgeworkerClient",
    ]
  ) assert.ok(names.includes(name), `mod.ts does not export ${name}`);
});

Deno.test("a config written with the Python SDK's names validates, defaults filled", () => {
  // Each of these is what a user writes: only the required fields.
  const logs: LogActionConfig = { onLoad: ["server ready"] };
  const benchmark: BenchmarkConfig = { dataset: [{ prompt: "hi" }] };
  const handler: HandlerConfig = { route: "/generate", benchmark };
  const config: WorkerConfig = {
    modelServerUrl: "http://127.0.0.1:18000",
    modelLogFile: "/var/log/model.log",
    logActions: logs,
    handlers: [handler],
  };
  const resolved: ResolvedWorkerConfig = parseWorkerConfig(config);
  const h = resolved.handlers[0];
  assert.equal(h.allowParallelRequests, false);
  assert.equal(h.maxQueueTime, 30);
  assert.deepEqual(h.workload, { kind: "constant", value: 100 });
  assert.deepEqual(
    { runs: h.benchmark?.runs, warmup: h.benchmark?.warmup },
    { runs: 3, warmup: true },
  );
  assert.deepEqual(resolved.logActions, {
    onLoad: ["server ready"],
    onError: [],
    onStartupError: [],
    onInfo: [],
  });
  assert.equal(resolved.maxSessions, 10);
  // The resolved form is itself a valid config (e.g. for `new Worker`).
  const again: WorkerConfig = resolved;
  assert.deepEqual(parseWorkerConfig(again), resolved);
});

Deno.test("the JSON Schema of the YAML config is still there", () => {
  const schema = workerConfigJsonSchema() as {
    required?: string[];
    properties?: Record<string, unknown>;
  };
  assert.deepEqual(schema.required, ["modelServerUrl", "handlers"]);
  assert.ok(schema.properties && "logActions" in schema.properties);
});
