/**
 * The pure HTTP rules of the worker's app, in memory with `app.request()`:
 * 404/405 derived from the registered routes, the 422 maps, and the check
 * order shared by handler routes and `/session/create` (draining answers
 * 503 with `Retry-After` before any signature is checked).
 */
import assert from "node:assert/strict";
import { ModelClient } from "../lib/model/model_client.ts";
import type { VerifyResult } from "../lib/auth/signatures.ts";
import { createApp } from "../lib/http/app.ts";
import { Lifecycle } from "../lib/model/lifecycle.ts";
import { QueuePlan } from "../lib/traffic/admission.ts";
import { compileHandler } from "../lib/traffic/handlers.ts";
import { Ledger } from "../lib/traffic/ledger.ts";
import { SessionStore } from "../lib/traffic/sessions.ts";
import { ResumeRegistry } from "../lib/traffic/resumable.ts";
import { Admission } from "../lib/traffic/ticket.ts";
import { HandlerConfigSchema } from "../lib/config/schemas.ts";
import { envelope } from "./helpers/worker.ts";

/** An app with one handler; the model server is never reached here. */
async function withApp(
  fn: (a: {
    request: (path: string, init?: RequestInit) => Promise<Response>;
    lifecycle: Lifecycle;
    ledger: Ledger;
    verified: number;
  }) => Promise<void>,
): Promise<void> {
  const ledger = new Ledger();
  const lifecycle = new Lifecycle();
  const sessions = new SessionStore({
    ledger,
    maxSessions: 2,
    modelServerUrl: "http://127.0.0.1:9",
  });
  const admission = new Admission({ ledger });
  const handler = compileHandler(
    HandlerConfigSchema.parse({ route: "/v1/completions" }),
    "http://127.0.0.1:9",
  );
  const queues = new QueuePlan();
  queues.add(handler.route, handler.config);
  const state = { verified: 0 };
  const modelClient = new ModelClient();
  const app = createApp({
    handlers: [handler],
    ledger,
    queues,
    lifecycle,
    sessions,
    admission,
    resumable: new ResumeRegistry(),
    verifier: {
      verify: (): Promise<VerifyResult> => {
        state.verified++;
        return Promise.resolve({ ok: false, reason: "test: always bad" });
      },
    },
    throughput: () => undefined,
    update: { token: "", file: "/nonexistent/.force_update" },
    drainRetryAfterSeconds: 7,
    metricsText: () => "",
    status: () => ({}),
    modelClient,
  });
  try {
    await fn({
      request: (path, init) =>
        Promise.resolve(app.request(`http://worker${path}`, init)),
      lifecycle,
      ledger,
      get verified() {
        return state.verified;
      },
    });
  } finally {
    await sessions.shutdown();
    await admission.close();
    modelClient.close();
  }
}

const POST = (body: string): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body,
});

Deno.test("405 lists the methods each path was registered with; 404 names the path", async () => {
  await withApp(async ({ request }) => {
    const get = await request("/v1/completions");
    assert.equal(get.status, 405);
    assert.equal(get.headers.get("allow"), "POST");
    assert.deepEqual(await get.json(), {
      error: "method GET not allowed",
      allow: "POST",
    });
    const post = await request("/metrics", { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET");
    await post.body?.cancel();
    const update = await request("/pyworker/update");
    assert.equal(update.headers.get("allow"), "POST");
    await update.body?.cancel();
    const none = await request("/nope");
    assert.equal(none.status, 404);
    assert.deepEqual(await none.json(), { error: "no route /nope" });
  });
});

Deno.test("422 maps name each bad field, on handler routes and /session/create alike", async () => {
  await withApp(async ({ request }) => {
    for (const route of ["/v1/completions", "/session/create"]) {
      const res = await request(
        route,
        POST(JSON.stringify({ auth_data: { reqnum: "x" }, payload: [] })),
      );
      assert.equal(res.status, 422, route);
      const body = await res.json();
      assert.equal(body.auth_data.reqnum !== undefined, true, route);
      assert.equal(typeof body.auth_data.signature, "string", route);
      assert.ok(body.payload, route);
      const bad = await request(route, POST("{not json"));
      assert.equal(bad.status, 422);
      assert.deepEqual(await bad.json(), { error: "invalid JSON" });
    }
  });
});

Deno.test("while draining, handler routes and /session/create answer 503 with Retry-After before checking the signature", async () => {
  await withApp(async (a) => {
    a.lifecycle.to("draining", "test");
    for (const route of ["/v1/completions", "/session/create"]) {
      const res = await a.request(route, POST(envelope({ lifetime: 5 })));
      assert.equal(res.status, 503, route);
      assert.equal(res.headers.get("retry-after"), "7", route);
      assert.deepEqual(await res.json(), { error: "worker is shutting down" });
    }
    assert.equal(a.verified, 0, "no signature was checked");
    assert.equal(
      a.ledger.totals().get("/v1/completions\u0000rejected_draining"),
      1,
    );
    assert.equal(
      a.ledger.totals().get("/session/create\u0000rejected_draining"),
      1,
    );
  });
});

Deno.test("an unknown session is 410 before draining and signature; a bad signature is 401 and recorded", async () => {
  await withApp(async (a) => {
    const unknown = await a.request(
      "/v1/completions",
      POST(JSON.stringify({
        ...JSON.parse(envelope({})),
        session_id: "no-such-session",
      })),
    );
    assert.equal(unknown.status, 410);
    assert.deepEqual(await unknown.json(), { error: "invalid session" });
    assert.equal(a.verified, 0);
    const bad = await a.request("/v1/completions", POST(envelope({})));
    assert.equal(bad.status, 401);
    assert.deepEqual(await bad.json(), {
      error: "invalid signature",
      reason: "test: always bad",
    });
    assert.equal(
      a.ledger.totals().get("/v1/completions\u0000rejected_signature"),
      1,
    );
  });
});
