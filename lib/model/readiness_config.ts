/**
 * What a worker config says about readiness: the mode in force, the
 * timeout, the model server's URLs and the log patterns as the monitor
 * takes them.
 *
 * @module
 */
import type { ReadinessMode, ResolvedWorkerConfig } from "../config/schemas.ts";
import type { LogActions, Pattern } from "./log_monitor.ts";

/** Resolves a health setting (path or URL) against the model server. */
export function healthUrlOf(config: ResolvedWorkerConfig): string | undefined {
  const h = config.modelHealthUrl;
  return h ? modelUrlOf(config, h) : undefined;
}

/** A path on the model server, or a full URL as it is. */
export function modelUrlOf(
  config: ResolvedWorkerConfig,
  pathOrUrl: string,
): string {
  if (/^https?:\/\//.test(pathOrUrl)) return pathOrUrl;
  return config.modelServerUrl.replace(/\/+$/, "") +
    (pathOrUrl.startsWith("/") ? pathOrUrl : `/${pathOrUrl}`);
}

/** How often the log says the model is still loading. */
export const LOADING_WARN_MS = 300_000;

/**
 * The readiness timeout in force: the config's, else none in the log modes
 * (Python's log mode has none) and 1800 s when only the health URL tells.
 */
export function readinessTimeoutOf(
  config: ResolvedWorkerConfig,
): number | null {
  if (config.readinessTimeout !== undefined) return config.readinessTimeout;
  return readinessModeOf(config) === "healthcheck" ? 1800 : null;
}

/** The readiness mode in force, from the config or what is configured. */
export function readinessModeOf(config: ResolvedWorkerConfig): ReadinessMode {
  if (config.readiness) return config.readiness;
  if (config.modelLogFile) return "logs";
  if (config.modelHealthUrl) return "healthcheck";
  return "none";
}

function toPattern(p: string | RegExp | { regex: string }): Pattern {
  return typeof p === "string" || p instanceof RegExp ? p : new RegExp(p.regex);
}

/** The config's log actions as the log monitor takes them. */
export function logActionsOf(config: ResolvedWorkerConfig): LogActions {
  const a = config.logActions;
  return {
    onLoad: a.onLoad.map(toPattern),
    onError: a.onError.map(toPattern),
    onStartupError: a.onStartupError.map(toPattern),
    onInfo: a.onInfo.map(toPattern),
  };
}
