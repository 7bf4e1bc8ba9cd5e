/**
 * The load probe: for a model server whose log may never print its load
 * line (older ComfyUI API wrappers), the model counts as loaded once every
 * probe URL answers 2xx in the same round, as the Python worker's
 * readiness shim decides.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { ResolvedLoadProbeConfig } from "../config/schemas.ts";
import { delay } from "../std/async.ts";
import { probe } from "./health.ts";

const log = getLogger(["edgeworker", "readiness"]);

/**
 * Probes every URL each interval until all answer 2xx in one round (true)
 * or `signal` ends the wait (false). Logs what it waits for when that
 * changes.
 */
export async function waitForLoadProbe(
  urls: readonly string[],
  options: Pick<ResolvedLoadProbeConfig, "intervalSeconds" | "timeoutSeconds">,
  signal: AbortSignal,
): Promise<boolean> {
  let last = "";
  while (!signal.aborted) {
    const results = await Promise.all(
      urls.map((u) => probe(u, options.timeoutSeconds * 1000, signal)),
    );
    if (signal.aborted) return false;
    const failing = results.findIndex((r) => !r.ok);
    if (failing < 0) {
      log.info("Model loaded: {urls} answered (no load line)", {
        urls: urls.join(" and "),
      });
      return true;
    }
    const r = results[failing];
    const reason = `${urls[failing]}: ${r.ok ? "" : r.reason}`;
    if (reason !== last) {
      log.info("Load probe waiting for {reason}", { reason });
      last = reason;
    }
    await delay(options.intervalSeconds * 1000, { signal }).catch(() => {});
  }
  return false;
}
