/**
 * The `edgeworker presets` listing.
 *
 * @module
 */
import type { ResolvedWorkerConfig } from "../lib/config/schemas.ts";
import { ConfigError, parseWorkerConfig } from "../lib/config/validate.ts";
import type { EnvVars, Preset } from "./_preset.ts";

function patterns(list: readonly unknown[]): string {
  return list.length === 0
    ? "-"
    : list.map((p) =>
      p instanceof RegExp
        ? String(p)
        : typeof p === "object" && p !== null && "regex" in p
        ? `/${String(p.regex)}/`
        : quote(String(p))
    ).join(", ");
}

/** A pattern in quotes that need no escaping when it holds `"`. */
function quote(s: string): string {
  return s.includes('"') && !s.includes("'") ? `'${s}'` : JSON.stringify(s);
}

function portOf(url: string): string {
  try {
    const u = new URL(url);
    return u.port || (u.protocol === "https:" ? "443" : "80");
  } catch {
    return "?";
  }
}

function benchmarkOf(c: ResolvedWorkerConfig): string {
  const h = c.handlers.find((h) => h.benchmark);
  if (!h?.benchmark) return "none (max_perf stays 0)";
  const b = h.benchmark;
  const concurrency = h.allowParallelRequests ? b.concurrency : 1;
  return `${h.route}, ${b.runs} run${
    b.runs === 1 ? "" : "s"
  } × ${concurrency} at once${b.warmup ? " after a warm-up request" : ""}`;
}

function canaryOf(c: ResolvedWorkerConfig): string {
  const k = c.canary;
  if (!k) return "none";
  const when = k.idleSeconds === null
    ? "off unless EDGEWORKER_CANARY_IDLE_SECONDS is set"
    : `after ${k.idleSeconds} s idle`;
  return `${k.route} ${
    JSON.stringify(k.payload)
  }, ${when}, ${k.deadlineSeconds} s deadline, not ready after ${k.failureThreshold} failures`;
}

/** The listing of one preset, in `env` (its config or why it has none). */
export function describePreset(p: Preset, env: EnvVars): string {
  const head = [`${p.name}: ${p.description}`];
  const tail = [
    ...(p.aliases?.length ? [`  aliases:      ${p.aliases.join(", ")}`] : []),
    ...(p.envVars?.length ? [`  env:          ${p.envVars.join(", ")}`] : []),
  ];
  let c: ResolvedWorkerConfig;
  try {
    c = parseWorkerConfig(p.config(env), `preset ${p.name}`);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return [
      ...head,
      ...e.problems.map((problem) => `  needs:        ${problem}`),
      `  workload:     ${p.workloadRule}`,
      ...tail,
    ].join("\n");
  }
  const routes = c.handlers.map((h) =>
    `${h.route}${h.upstreamRoute ? ` → ${h.upstreamRoute}` : ""}${
      h.allowParallelRequests ? "" : " (FIFO)"
    }${h.benchmark ? " [benchmark]" : ""}`
  ).join(", ");
  return [
    ...head,
    `  routes:       ${routes}`,
    `  model server: ${c.modelServerUrl} (port ${
      portOf(c.modelServerUrl)
    }, health ${c.modelHealthUrl ?? "-"})`,
    `  log file:     ${c.modelLogFile ?? "-"}`,
    `  readiness:    ${c.readiness ?? "auto"}`,
    `  on load:      ${patterns(c.logActions.onLoad)}`,
    `  on error:     ${patterns(c.logActions.onError)}`,
    `  before ready: ${patterns(c.logActions.onStartupError)}`,
    `  supervisord:  ${c.supervisorProgram ?? "-"}`,
    `  on info:      ${patterns(c.logActions.onInfo)}`,
    `  workload:     ${p.workloadRule}`,
    `  benchmark:    ${benchmarkOf(c)}`,
    `  canary:       ${canaryOf(c)}`,
    ...tail,
  ].join("\n");
}

/** One block per preset: routes, model server, log path and patterns. */
export function describePresets(
  presets: readonly Preset[],
  env: EnvVars,
): string {
  return presets.map((p) => describePreset(p, env)).join("\n\n");
}
