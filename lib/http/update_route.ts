/**
 * `POST /pyworker/update`: Vast's rolling update asks the start script to
 * reinstall on next start by writing a marker file.
 *
 * @module
 */
import { Hono } from "hono";
import { getLogger } from "@logtape/logtape";
import { tokensEqual } from "../auth/signatures.ts";
import { jsonError } from "./errors.ts";

const log = getLogger(["edgeworker", "update"]);

/**
 * Builds the route. An empty `MASTER_TOKEN` disables it (403) instead of
 * accepting an empty header, as the Python worker did.
 */
export function updateRoute(options: { token: string; file: string }): Hono {
  const app = new Hono();
  app.post("/pyworker/update", async (c) => {
    if (options.token === "") {
      return jsonError(403, {
        error: "update route disabled: MASTER_TOKEN is empty",
      });
    }
    const header = c.req.header("authorization") ?? "";
    const given = header.startsWith("Bearer ") ? header.slice(7) : header;
    if (!tokensEqual(given, options.token)) {
      return jsonError(401, { error: "unauthorized" });
    }
    try {
      await Deno.writeTextFile(options.file, "");
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      log.error("Cannot write {file}: {why}", { file: options.file, why });
      return jsonError(500, { error: `failed to write file: ${why}` });
    }
    log.info("Update requested: wrote {file}", { file: options.file });
    return c.json({ ok: true });
  });
  return app;
}
