/**
 * Sessions through a real worker: signed creation, requests inside a
 * session, expiry, the two ports of `/session/end`, and the close callback.
 */
import assert from "node:assert/strict";
import type { WorkerConfig } from "../lib/config/schemas.ts";
import { Worker } from "../lib/worker/worker.ts";
import { startUpstream, type UpstreamHandle } from "./helpers/upstream.ts";
import {
  generateKeys,
  signedAuth,
  writePubkeyFile,
} from "./helpers/signing.ts";
import { FAST, startWorker } from "./helpers/worker.ts";
import { post, waitFor } from "./helpers/http.ts";

const KEYS = await generateKeys();
const COST = 100;
const HANDLERS: WorkerConfig["handlers"] = [
  { route: "/echo", allowParallelRequests: true, workload: () => 7 },
  { route: "/stream", allowParallelRequests: true, workload: () => 7 },
];

interface Ctx {
  url: string;
  httpPort: number | undefined;
  ledger: Awaited<ReturnType<Worker["start"]>>["ledger"];
  up: UpstreamHandle;
  /** A signed auth_data, as `/route/` gives it. */
  auth: Record<string, unknown>;
  /** Stops the worker early (closes every session); safe to repeat. */
  shutdown(): Promise<void>;
}

/** A signature-checking worker; `httpPort` 0 also serves the plain port. */
async function withWorker(
  fn: (ctx: Ctx) => Promise<void>,
  options: { maxSessions?: number; httpPort?: number | false } = {},
): Promise<void> {
  const up = startUpstream();
  const keyDir = await Deno.makeTempDir({ prefix: "edgeworker-sessions-" });
  const w = await startWorker(
    {
      modelServerUrl: up.url,
      handlers: HANDLERS,
      maxSessions: options.maxSessions,
    },
    {
      UNSECURED: "false",
      EDGEWORKER_PUBKEY_FILE: await writePubkeyFile(keyDir, KEYS.publicPem),
    },
    FAST,
    options.httpPort,
  );
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const auth = await signedAuth(KEYS.privateKey, undefined, { cost: COST });
    await fn({
      url: w.url,
      httpPort: w.httpPort,
      ledger: w.ledger,
      up,
      auth,
      shutdown: () => w.shutdown(),
    });
  } finally {
    await w.stop();
    await up.close();
    await Deno.remove(keyDir, { recursive: true });
  }
}

/** POSTs a JSON value and reads the JSON answer. */
async function call(
  base: string,
  route: string,
  value: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await post(base, route, JSON.stringify(value));
  return { status: res.status, json: await res.json() };
}

function create(
  ctx: Ctx,
  options: Record<string, unknown> = {},
  auth: Record<string, unknown> = ctx.auth,
) {
  return call(ctx.url, "/session/create", {
    auth_data: auth,
    payload: {
      lifetime: 60,
      on_close_route: null,
      on_close_payload: null,
      ...options,
    },
  });
}

async function open(
  ctx: Ctx,
  options: Record<string, unknown> = {},
): Promise<{ id: string; expiration: number }> {
  const res = await create(ctx, options);
  assert.equal(res.status, 201, JSON.stringify(res.json));
  return {
    id: String(res.json.session_id),
    expiration: Number(res.json.expiration),
  };
}

function inSession(
  ctx: Ctx,
  id: string,
  payload: Record<string, unknown>,
  route = "/echo",
) {
  return call(ctx.url, route, {
    auth_data: ctx.auth,
    payload,
    session_id: id,
  });
}

/** The envelope of a request in session `id`, as JSON text. */
function sessionBody(
  ctx: Ctx,
  id: string,
  payload: Record<string, unknown>,
): string {
  return JSON.stringify({ auth_data: ctx.auth, payload, session_id: id });
}

/** POSTs to a session management route (`/session/end`, `get`, `health`). */
function manage(
  base: string,
  route: string,
  id: string,
  auth: unknown,
) {
  return call(base, route, { session_id: id, session_auth: auth });
}

function sessionRecords(ctx: Ctx) {
  return [...ctx.ledger.inFlight, ...ctx.ledger.pendingFinished()].filter(
    (r) => r.kind === "session",
  );
}

Deno.test("a signed create opens a session; an unsigned one gets 401 and is counted as rejected", async () => {
  await withWorker(async (ctx) => {
    const before = Date.now() / 1000;
    const res = await create(ctx);
    assert.equal(res.status, 201);
    assert.deepEqual(Object.keys(res.json).sort(), [
      "expiration",
      "session_id",
    ]);
    assert.match(String(res.json.session_id), /^[A-Za-z0-9]{13}$/);
    const exp = Number(res.json.expiration);
    assert.ok(exp >= before + 60 && exp <= Date.now() / 1000 + 60);

    const unsigned = await create(ctx, {}, {
      ...ctx.auth,
      signature: "unsigned",
      request_idx: 2,
    });
    assert.equal(unsigned.status, 401);
    assert.equal(unsigned.json.error, "invalid signature");
    const rejected = ctx.ledger.pendingFinished().filter((r) =>
      r.status === "rejected"
    );
    assert.deepEqual(
      rejected.map((r) => [r.requestIdx, r.rejectReason, r.httpStatus]),
      [[2, "signature", 401]],
    );
    // Only the signed one holds load.
    assert.equal(sessionRecords(ctx).length, 1);
    assert.equal(ctx.ledger.currentLoad, COST);
  });
});

Deno.test("requests inside a session are forwarded and covered by the session's load", async () => {
  await withWorker(async (ctx) => {
    const { id } = await open(ctx);
    assert.equal(ctx.ledger.currentLoad, COST);
    for (const n of [1, 2]) {
      const res = await inSession(ctx, id, { n });
      assert.equal(res.status, 200);
      assert.deepEqual(res.json, { received: { n } });
    }
    assert.deepEqual(ctx.up.bodies, [{ n: 1 }, { n: 2 }]);
    // While a session request runs, the load is the session's cost alone.
    const res = await post(
      ctx.url,
      "/stream",
      sessionBody(ctx, id, { chunks: 3, gap_ms: 100 }),
    );
    const reader = res.body!.getReader();
    await reader.read();
    assert.equal(ctx.ledger.inFlightCount, 2);
    assert.equal(ctx.ledger.currentLoad, COST);
    while (!(await reader.read()).done) { /* drain */ }
    // Session requests are reported through the session, not one by one.
    assert.deepEqual(ctx.ledger.pendingFinished(), []);

    // A session request with other auth_data is refused.
    const other = await call(ctx.url, "/echo", {
      auth_data: { ...ctx.auth, reqnum: 99 },
      payload: { n: 3 },
      session_id: id,
    });
    assert.equal(other.status, 401);
    assert.equal(ctx.up.bodies.length, 3);

    const end = await manage(ctx.url, "/session/end", id, ctx.auth);
    assert.equal(end.status, 200);
    await waitFor(() => ctx.ledger.inFlightCount === 0, 2000, "drained");
    assert.equal(ctx.ledger.currentLoad, 0);
    const [rec] = sessionRecords(ctx);
    assert.equal(rec.status, "success");
    assert.equal(rec.sessionId, id);
    assert.equal(rec.workload, COST);
  });
});

Deno.test("each request extends the session by its lifetime", async () => {
  await withWorker(async (ctx) => {
    const { id, expiration } = await open(ctx, { lifetime: 30 });
    const get = () => manage(ctx.url, "/session/get", id, ctx.auth);
    assert.equal((await get()).json.expiration, expiration);
    for (const n of [1, 2, 3]) {
      const res = await inSession(ctx, id, { n });
      assert.equal(res.status, 200);
      const now = Number((await get()).json.expiration);
      assert.ok(Math.abs(now - (expiration + 30 * n)) < 1e-6, `after ${n}`);
    }
  });
});

Deno.test("an expired session is reaped, its load released, and its use gets 410", async () => {
  await withWorker(async (ctx) => {
    const { id } = await open(ctx, { lifetime: 0.2 });
    assert.equal(ctx.ledger.currentLoad, COST);
    await waitFor(() => ctx.ledger.currentLoad === 0, 2000, "reaped");
    const [rec] = sessionRecords(ctx);
    assert.equal(rec.status, "success");
    assert.match(String(rec.detail), /expired/);
    const use = await inSession(ctx, id, { n: 1 });
    assert.equal(use.status, 410);
    assert.deepEqual(use.json, { error: "invalid session" });
    assert.equal(ctx.up.bodies.length, 0);
    const end = await manage(ctx.url, "/session/end", id, ctx.auth);
    assert.equal(end.status, 410);
    const health = await manage(ctx.url, "/session/health", id, ctx.auth);
    assert.deepEqual(health.json, { ok: false });
  });
});

Deno.test("/session/end works on the main port and on the plain-HTTP port; twice gets 410", async () => {
  await withWorker(async (ctx) => {
    assert.ok(ctx.httpPort !== undefined && ctx.httpPort > 0);
    const plain = `http://127.0.0.1:${ctx.httpPort}`;
    assert.notEqual(plain, ctx.url);
    const a = await open(ctx);
    const b = await open(ctx);
    assert.equal(ctx.ledger.currentLoad, 2 * COST);

    const endA = await manage(ctx.url, "/session/end", a.id, ctx.auth);
    assert.equal(endA.status, 200);
    assert.deepEqual(endA.json, { ended: true, removed_session: a.id });
    assert.equal(ctx.ledger.currentLoad, COST);

    const endB = await manage(plain, "/session/end", b.id, ctx.auth);
    assert.equal(endB.status, 200);
    assert.deepEqual(endB.json, { ended: true, removed_session: b.id });
    assert.equal(ctx.ledger.currentLoad, 0);

    for (const [base, id] of [[plain, a.id], [ctx.url, b.id]]) {
      const again = await manage(base, "/session/end", id, ctx.auth);
      assert.equal(again.status, 410);
      assert.match(String(again.json.error), /already closed/);
    }
    const unknown = await call(plain, "/session/end", {
      session_id: "NoSuchSession",
      session_auth: ctx.auth,
    });
    assert.equal(unknown.status, 400);
    // The plain port serves nothing else.
    const other = await call(plain, "/session/get", { session_id: a.id });
    assert.equal(other.status, 404);
    const use = await inSession(ctx, a.id, { n: 1 });
    assert.equal(use.status, 410);
  }, { httpPort: 0 });
});

Deno.test("a wrong session_auth gets 401 on get, health and end, and the session stays open", async () => {
  await withWorker(async (ctx) => {
    const { id } = await open(ctx);
    const wrongs = [
      { ...ctx.auth, reqnum: 2 },
      { ...ctx.auth, signature: "x" },
      null,
      undefined,
    ];
    for (const route of ["/session/get", "/session/health", "/session/end"]) {
      for (const wrong of wrongs) {
        const res = await manage(ctx.url, route, id, wrong);
        assert.equal(res.status, 401, `${route} ${JSON.stringify(wrong)}`);
        assert.deepEqual(res.json, { error: "session_auth is not valid" });
      }
    }
    assert.equal(ctx.ledger.currentLoad, COST);
    // Key order does not matter: equality is by value.
    const reordered = Object.fromEntries(Object.entries(ctx.auth).reverse());
    const health = await manage(ctx.url, "/session/health", id, reordered);
    assert.deepEqual(health.json, { ok: true });
  });
});

Deno.test("/session/get and /session/health answer with the documented shapes", async () => {
  await withWorker(async (ctx) => {
    const { id, expiration } = await open(ctx, {
      lifetime: 45,
      on_close_route: "/echo",
      on_close_payload: { job: 7 },
    });
    const got = await manage(ctx.url, "/session/get", id, ctx.auth);
    assert.equal(got.status, 200);
    const createdAt = Number(got.json.created_at);
    assert.deepEqual(got.json, {
      session_id: id,
      auth_data: ctx.auth,
      lifetime: 45,
      expiration,
      created_at: createdAt,
      on_close_route: "/echo",
      on_close_payload: { job: 7 },
    });
    assert.ok(Math.abs(expiration - createdAt - 45) < 1e-6);

    const health = await manage(ctx.url, "/session/health", id, ctx.auth);
    assert.equal(health.status, 200);
    assert.deepEqual(health.json, { ok: true });

    const unknown = await call(ctx.url, "/session/get", {
      session_id: "NoSuchSession",
      session_auth: ctx.auth,
    });
    assert.equal(unknown.status, 400);
    const unknownHealth = await call(ctx.url, "/session/health", {
      session_id: "NoSuchSession",
      session_auth: ctx.auth,
    });
    assert.deepEqual(unknownHealth, { status: 200, json: { ok: false } });
    const missing = await call(ctx.url, "/session/get", {
      session_auth: ctx.auth,
    });
    assert.equal(missing.status, 422);
    assert.deepEqual(missing.json, {
      error: "missing session_id",
      session_id: "field missing",
    });
    const bad = await post(ctx.url, "/session/get", "{oops");
    assert.equal(bad.status, 422);
    assert.deepEqual(await bad.json(), { error: "invalid JSON" });
  });
});

Deno.test("beyond maxSessions a create gets 429 and is counted as rejected", async () => {
  await withWorker(async (ctx) => {
    const a = await open(ctx);
    await open(ctx);
    const third = await create(ctx, {}, { ...ctx.auth, request_idx: 3 });
    assert.equal(third.status, 429);
    assert.deepEqual(third.json, { error: "too many sessions" });
    const rejected = ctx.ledger.pendingFinished().filter((r) =>
      r.status === "rejected"
    );
    assert.deepEqual(
      rejected.map((r) => [r.requestIdx, r.rejectReason, r.httpStatus]),
      [[3, "sessions", 429]],
    );
    assert.equal(ctx.ledger.window().rejected, COST);
    assert.equal(ctx.ledger.currentLoad, 2 * COST);
    // Ending one makes room again.
    const end = await manage(ctx.url, "/session/end", a.id, ctx.auth);
    assert.equal(end.status, 200);
    await open(ctx);
  }, { maxSessions: 2 });
});

Deno.test("on_close_route is called exactly once with the session_id, whether ended, expired or shut down", async () => {
  await withWorker(async (ctx) => {
    const closes = () =>
      ctx.up.bodies.filter((b) => b.closing !== undefined) as {
        closing: string;
        session_id?: string;
      }[];
    const ended = await open(ctx, {
      on_close_route: "/echo",
      on_close_payload: { closing: "ended" },
    });
    const expired = await open(ctx, {
      lifetime: 0.2,
      on_close_route: "/echo",
      on_close_payload: { closing: "expired" },
    });
    const left = await open(ctx, {
      on_close_route: "/echo",
      on_close_payload: "left open",
    });
    const end = await manage(ctx.url, "/session/end", ended.id, ctx.auth);
    assert.equal(end.status, 200);
    const again = await manage(ctx.url, "/session/end", ended.id, ctx.auth);
    assert.equal(again.status, 410);
    await waitFor(() => closes().length === 2, 2000, "both callbacks");
    await waitFor(() => ctx.ledger.currentLoad === COST, 2000, "reaped");
    const use = await inSession(ctx, expired.id, { n: 1 });
    assert.equal(use.status, 410);
    // Shutting down closes what is left and waits for callbacks: a
    // duplicate would show up by now.
    await ctx.shutdown();
    assert.deepEqual(
      closes().sort((x, y) => x.closing.localeCompare(y.closing)),
      [
        { closing: "ended", session_id: ended.id },
        { closing: "expired", session_id: expired.id },
      ],
    );
    // A payload that is not an object is wrapped.
    assert.deepEqual(
      ctx.up.bodies.filter((b) => b.session_id === left.id),
      [{ payload: "left open", session_id: left.id }],
    );
  });
});

Deno.test("ending a session aborts its requests in flight", async () => {
  await withWorker(async (ctx) => {
    const { id } = await open(ctx);
    const res = await post(
      ctx.url,
      "/stream",
      sessionBody(ctx, id, { chunks: 100, gap_ms: 30 }),
    );
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    await reader.read();
    const end = await manage(ctx.url, "/session/end", id, ctx.auth);
    assert.equal(end.status, 200);
    const endedAt = Date.now();
    let text = "";
    const dec = new TextDecoder();
    const outcome = await (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return "ended";
          text += dec.decode(value);
        }
      } catch {
        return "errored";
      }
    })();
    assert.ok(Date.now() - endedAt < 1000, `stream went on (${outcome})`);
    assert.doesNotMatch(text, /\[DONE\]/);
    await waitFor(() => ctx.up.aborted === 1, 1000, "model call aborted");
    assert.ok(ctx.up.chunkTimes.length < 100);
    await waitFor(() => ctx.ledger.inFlightCount === 0, 1000, "ledger empty");
  });
});

// Only an admitted request may extend a session: otherwise anyone who
// learns a session id could keep it (and its load) alive forever.
Deno.test({
  name: "a session request refused with 401 does not extend the session",
  fn: async () => {
    await withWorker(async (ctx) => {
      const { id, expiration } = await open(ctx, { lifetime: 30 });
      const refused = await call(ctx.url, "/echo", {
        auth_data: { ...ctx.auth, reqnum: 99 },
        payload: { n: 1 },
        session_id: id,
      });
      assert.equal(refused.status, 401);
      const got = await manage(ctx.url, "/session/get", id, ctx.auth);
      assert.equal(got.json.expiration, expiration);
    });
  },
});
