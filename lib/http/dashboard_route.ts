/**
 * `GET /dashboard`: the live page for this worker (its state, load,
 * `max_perf`, queue, last requests, and load and throughput over time),
 * and `GET /dashboard/data`, the JSON it polls. Mounted only when
 * `EDGEWORKER_DASHBOARD=true`; both need `MASTER_TOKEN`, as
 * `Authorization: Bearer <token>` or, so a browser can open the page,
 * `?token=<token>` (the page sends it on as the header). An empty
 * `MASTER_TOKEN` keeps the dashboard shut (403), as on `/pyworker/update`.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { tokensEqual } from "../auth/signatures.ts";
import type { LiveView } from "../metrics/live_view.ts";
import { jsonError } from "./errors.ts";
import { livePage } from "./live_page.ts";

/** What the dashboard needs. */
export interface DashboardDeps {
  /** `MASTER_TOKEN`. */
  token: string;
  /** The view now (see `DashboardFeed`). */
  view: () => LiveView;
  /** Page heading. */
  title: string;
}

/** Why a request may not see the dashboard, or `undefined` when it may. */
function refusal(c: Context, token: string): Response | undefined {
  if (token === "") {
    return jsonError(403, {
      error: "dashboard disabled: MASTER_TOKEN is empty",
    });
  }
  const header = c.req.header("authorization") ?? "";
  const given = header.startsWith("Bearer ")
    ? header.slice(7)
    : c.req.query("token") ?? "";
  if (!tokensEqual(given, token)) {
    return jsonError(401, {
      error:
        "unauthorized: give MASTER_TOKEN as Authorization: Bearer <token> or ?token=<token>",
    });
  }
  return undefined;
}

/** Builds the routes. */
export function dashboardRoute(deps: DashboardDeps): Hono {
  const app = new Hono();
  const page = livePage({ title: deps.title, dataUrl: "dashboard/data" });
  app.get("/dashboard", (c) =>
    refusal(c, deps.token) ?? new Response(page, {
      headers: {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
      },
    }));
  app.get("/dashboard/data", (c) =>
    refusal(c, deps.token) ??
      c.json(deps.view(), 200, { "cache-control": "no-store" }));
  return app;
}
