/**
 * Classifies a log line under a resolved config's log actions, with the
 * matcher and pattern conversion the worker itself uses.
 *
 * @module
 */
import type { ResolvedWorkerConfig } from "../../lib/config/schemas.ts";
import {
  classifyLine,
  type LogEventKind,
} from "../../lib/model/log_monitor.ts";
import { logActionsOf } from "../../lib/model/readiness_config.ts";

/** What `line` of the model log means under `config`'s log actions. */
export function classifyConfigLine(
  config: ResolvedWorkerConfig,
  line: string,
): LogEventKind | undefined {
  return classifyLine(logActionsOf(config), line);
}
