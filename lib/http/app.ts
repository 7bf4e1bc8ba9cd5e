/**
 * The worker's HTTP surface: one POST route per handler, the local
 * endpoints (`/health`, `/ready`, `/metrics`, `/status`), sessions and the
 * update route. Every error is a JSON body naming what is wrong, made once
 * from what a route threw.
 *
 * @module
 */
import { Hono } from "hono";
import type { CompiledHandler } from "../traffic/handlers.ts";
import { type DashboardDeps, dashboardRoute } from "./dashboard_route.ts";
import { answerWrongMethods, errorAnswer } from "./errors.ts";
import {
  type HandlerFetch,
  handlerFetch,
  handlerRoute,
  type HandlerRouteDeps,
} from "./handler_route.ts";
import { resumeRoute } from "./resume_route.ts";
import { sessionRoutes } from "./session_routes.ts";
import { updateRoute } from "./update_route.ts";

/** Everything the routes need. */
export interface AppDeps extends HandlerRouteDeps {
  handlers: readonly CompiledHandler[];
  /** `MASTER_TOKEN` and the file `/pyworker/update` writes. */
  update: { token: string; file: string };
  /** Seconds a client should wait before retrying during shutdown. */
  drainRetryAfterSeconds: number;
  metricsText: () => string;
  status: () => unknown;
  /** The health levels (alive, engine, generation) `/ready` shows. */
  health?: () => unknown;
  /** `GET /dashboard`, only with `EDGEWORKER_DASHBOARD=true`. */
  dashboard?: DashboardDeps;
}

/** Builds the Hono app of a worker. */
export function createApp(deps: AppDeps): Hono {
  const app = new Hono();

  app.get(
    "/health",
    (c) => c.json({ status: "alive", state: deps.lifecycle.state }),
  );
  app.get("/ready", (c) => {
    const body = {
      state: deps.lifecycle.state,
      error_msg: deps.lifecycle.errorMsg,
      loading_seconds: deps.lifecycle.loadingSeconds,
      ...(deps.health ? { health: deps.health() } : {}),
    };
    return c.json(body, deps.lifecycle.ready ? 200 : 503);
  });
  app.get("/metrics", () =>
    new Response(deps.metricsText(), {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    }));
  app.get("/status", (c) => c.json(deps.status()));
  app.get("/ping", (c) => c.text("pong"));

  for (const handler of deps.handlers) {
    app.post(handler.route, handlerRoute(handler, deps));
  }
  app.post("/resume/:id", resumeRoute(deps));
  app.route("/", sessionRoutes(deps));
  app.route("/", updateRoute(deps.update));
  if (deps.dashboard) app.route("/", dashboardRoute(deps.dashboard));
  answerWrongMethods(app);
  app.notFound((c) => c.json({ error: `no route ${c.req.path}` }, 404));
  app.onError(errorAnswer);
  return app;
}

/**
 * The worker's request handler: the app, with a POST to a handler's route
 * called before Hono's router and context are made (the request path of
 * every inference call). Same answers: its errors go through the same
 * {@linkcode errorAnswer}; any other method or path, Hono routes.
 */
export function serveApp(
  deps: AppDeps,
): (req: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response> {
  const app = createApp(deps);
  const routes = new Map<string, HandlerFetch>();
  for (const handler of deps.handlers) {
    routes.set(handler.route, handlerFetch(handler, deps));
  }
  return (req, info) => {
    const route = req.method === "POST" ? routes.get(pathOf(req.url)) : null;
    if (!route) return app.fetch(req, info);
    return route(req, info).catch(errorAnswer);
  };
}

/** The path of a request URL (`http://host/p?q` → `/p`), as it is sent. */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("://") + 3);
  if (start < 0) return "/";
  let end = url.length;
  for (let i = start; i < end; i++) {
    const c = url.charCodeAt(i);
    if (c === 0x3f || c === 0x23) end = i; // ? #
  }
  return url.slice(start, end);
}
