/**
 * The `edgeworker presets` listing.
 *
 * @module
 */
import { parseWorkerConfig } from "../lib/config_file.ts";
import type { EnvVars, Preset } from "./_preset.ts";

function patterns(list: readonly unknown[]): string {
  return list.length === 0
    ? "-"
    : list.map((p) => JSON.stringify(String(p))).join(", ");
}

/** One block per preset: routes, model server, log path and patterns. */
export function describePresets(
  presets: readonly Preset[],
  env: EnvVars,
): string {
  return presets.map((p) => {
    const c = parseWorkerConfig(p.config(env), `preset ${p.name}`);
    const routes = c.handlers.map((h) =>
      `${h.route}${h.allowParallelRequests ? "" : " (FIFO)"}${
        h.benchmark ? " [benchmark]" : ""
      }`
    ).join(", ");
    return [
      `${p.name}: ${p.description}`,
      `  routes:       ${routes}`,
      `  model server: ${c.modelServerUrl} (health ${c.modelHealthUrl ?? "-"})`,
      `  log file:     ${c.modelLogFile ?? "-"}`,
      `  readiness:    ${c.readiness ?? "auto"}`,
      `  on load:      ${patterns(c.logActions.onLoad)}`,
      `  on error:     ${patterns(c.logActions.onError)}`,
      `  workload:     ${p.workloadRule}`,
    ].join("\n");
  }).join("\n\n");
}
