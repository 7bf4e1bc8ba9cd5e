/**
 * Any JSON-over-HTTP model server, configured from the environment alone:
 *
 * | Variable | Meaning |
 * |---|---|
 * | `MODEL_SERVER_URL` | **required**: base URL, e.g. `http://127.0.0.1:8000` |
 * | `EDGEWORKER_ROUTES` | comma list of routes, each `/route` or `/route=/upstream/path` (default `/generate`) |
 * | `EDGEWORKER_PARALLEL` | `true`: forward at once; default `false`: one at a time (FIFO) |
 * | `EDGEWORKER_WORKLOAD` | constant workload of every request (default 100) |
 * | `MAX_QUEUE_TIME` | seconds of estimated queue above which 429 (default 30) |
 * | `MODEL_LOG` | log file to tail (optional; needs `MODEL_LOAD_LOG_MSG`) |
 * | `MODEL_LOAD_LOG_MSG`, `MODEL_ERROR_LOG_MSGS`, `MODEL_INFO_LOG_MSGS` | newline-separated patterns |
 * | `MODEL_HEALTH_ENDPOINT` | health path or URL (optional) |
 * | `READINESS` | `logs`, `healthcheck`, `both` or `none` (default: from what is set) |
 * | `BENCHMARK_JSON_PATH` | a JSON payload (or a list of them) for the benchmark |
 * | `BENCHMARK_ROUTE` | route the benchmark uses (default the first route) |
 * | `BENCHMARK_RUNS`, `BENCHMARK_CONCURRENCY` | benchmark size (3, 10) |
 *
 * Choices:
 * - Without `BENCHMARK_JSON_PATH` nothing is benchmarked (the worker cannot
 *   guess a valid payload) and `max_perf` stays 0: set it for real use.
 * - A log without a load pattern is refused at start: the worker would
 *   wait for readiness forever.
 * - Readiness follows what is given: log and health → both, one of them →
 *   that one, neither → ready at once.
 *
 * @module
 */
import {
  type HandlerConfig,
  type Payload,
  readinessWaitsFor,
} from "../lib/config/schemas.ts";
import {
  benchmarkSizeFrom,
  booleanFrom,
  isRecord,
  modelServerFrom,
  numberFrom,
  type Preset,
  presetError,
  readJsonFile,
} from "./_preset.ts";

/** Route when `EDGEWORKER_ROUTES` is not set. */
export const GENERIC_DEFAULT_ROUTE = "/generate";

/** `{route, upstreamRoute?}` of each `EDGEWORKER_ROUTES` entry. */
export function routesFrom(
  value: string | undefined,
): { route: string; upstreamRoute?: string }[] {
  const entries = (value ?? "").split(",").map((e) => e.trim()).filter((e) =>
    e !== ""
  );
  if (entries.length === 0) return [{ route: GENERIC_DEFAULT_ROUTE }];
  return entries.map((entry) => {
    const [route, upstream, ...rest] = entry.split("=").map((p) => p.trim());
    const ok = (p: string | undefined) => p !== undefined && p.startsWith("/");
    if (
      !ok(route) || rest.length > 0 || (upstream !== undefined && !ok(upstream))
    ) {
      throw presetError(
        "generic",
        `EDGEWORKER_ROUTES: "${entry}" is not "/route" or "/route=/upstream/path"`,
      );
    }
    return upstream ? { route, upstreamRoute: upstream } : { route };
  });
}

/** The generic preset. */
export const generic: Preset = {
  name: "generic",
  description: "Any JSON-over-HTTP model server, configured by env",
  workloadRule: "constant EDGEWORKER_WORKLOAD (default 100)",
  envVars: [
    "MODEL_SERVER_URL",
    "EDGEWORKER_ROUTES",
    "EDGEWORKER_PARALLEL",
    "EDGEWORKER_WORKLOAD",
    "MAX_QUEUE_TIME",
    "MODEL_LOG",
    "MODEL_LOAD_LOG_MSG",
    "MODEL_ERROR_LOG_MSGS",
    "MODEL_INFO_LOG_MSGS",
    "MODEL_HEALTH_ENDPOINT",
    "READINESS",
    "BENCHMARK_JSON_PATH",
    "BENCHMARK_ROUTE",
    "BENCHMARK_RUNS",
    "BENCHMARK_CONCURRENCY",
  ],
  config: (env) => {
    const url = env.MODEL_SERVER_URL?.trim();
    if (!url) {
      throw presetError(
        "generic",
        "MODEL_SERVER_URL: required: the base URL of the model server, e.g. http://127.0.0.1:8000",
      );
    }
    const server = modelServerFrom("generic", env, {
      url,
      onLoad: [],
      onError: [],
      onInfo: [],
    });
    const { readiness } = server;
    const waits = readinessWaitsFor(readiness);
    if (waits.log && !server.modelLogFile) {
      throw presetError(
        "generic",
        `MODEL_LOG: required when READINESS is "${readiness}"`,
      );
    }
    if (waits.health && !server.modelHealthUrl) {
      throw presetError(
        "generic",
        `MODEL_HEALTH_ENDPOINT: required when READINESS is "${readiness}"`,
      );
    }
    if (waits.log && server.logActions.onLoad.length === 0) {
      throw presetError(
        "generic",
        "MODEL_LOAD_LOG_MSG: required with MODEL_LOG (the line that means " +
          "the model is loaded); or unset MODEL_LOG and use MODEL_HEALTH_ENDPOINT",
      );
    }
    const routes = routesFrom(env.EDGEWORKER_ROUTES);
    const benchmarkRoute = env.BENCHMARK_ROUTE?.trim() || routes[0].route;
    if (!routes.some((r) => r.route === benchmarkRoute)) {
      throw presetError(
        "generic",
        `BENCHMARK_ROUTE: "${benchmarkRoute}" is not one of EDGEWORKER_ROUTES (${
          routes.map((r) => r.route).join(", ")
        })`,
      );
    }
    const dataset = benchmarkDataset(env);
    const handlers: HandlerConfig[] = routes.map((r) => ({
      ...r,
      allowParallelRequests: booleanFrom(env.EDGEWORKER_PARALLEL, false),
      maxQueueTime: numberFrom(env.MAX_QUEUE_TIME, 30),
      workload: {
        kind: "constant",
        value: numberFrom(env.EDGEWORKER_WORKLOAD, 100),
      },
      ...(dataset && r.route === benchmarkRoute
        ? {
          benchmark: {
            dataset,
            ...benchmarkSizeFrom(env),
          },
        }
        : {}),
    }));
    return { ...server, handlers };
  },
};

/** Benchmark payloads from `BENCHMARK_JSON_PATH`: one object or a list. */
function benchmarkDataset(
  env: Record<string, string | undefined>,
): Payload[] | undefined {
  const path = env.BENCHMARK_JSON_PATH?.trim();
  if (!path) return undefined;
  const data = readJsonFile("generic", "BENCHMARK_JSON_PATH", path);
  const list = Array.isArray(data) ? data : [data];
  if (list.length === 0 || !list.every(isRecord)) {
    throw presetError(
      "generic",
      `BENCHMARK_JSON_PATH: ${path} must hold a JSON object (a payload) or a non-empty list of them`,
    );
  }
  return list as Payload[];
}
