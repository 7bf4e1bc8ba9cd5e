/**
 * `on_close_route` cannot make the worker call anywhere but its model
 * server: anything but a plain path is refused at `/session/create`, the
 * call goes to the model server's origin, a redirect is not followed, and
 * the call and its payload are bounded.
 */
import assert from "node:assert/strict";
import { Ledger } from "../lib/traffic/ledger.ts";
import { SessionStore } from "../lib/traffic/sessions.ts";
import { startWorker, UNSIGNED_AUTH } from "./helpers/worker.ts";
import { post, waitFor } from "./helpers/http.ts";
import { startUpstream } from "./helpers/upstream.ts";
import { startIdleClosingServer } from "./helpers/idle_closing_server.ts";

/** The scripted model server, seen as the calls the worker made to it. */
interface Recorder {
  url: string;
  port: number;
  /** `METHOD path` of each request, with its JSON body if any. */
  readonly seen: { line: string; body: unknown }[];
  /** Requests whose caller went away before the answer. */
  readonly aborted: number;
  close(): Promise<void>;
}

/**
 * Starts the scripted model server; `answer` picks the reply to a POST
 * (GET /health is 200, for the worker's readiness probe).
 */
function startRecorder(
  answer: (path: string, req: Request) => Response | Promise<Response> = () =>
    Response.json({ ok: true }),
): Recorder {
  const up = startUpstream({ script: ({ path, req }) => answer(path, req) });
  return {
    url: up.url,
    port: up.port,
    get seen() {
      return up.calls.map((c) => ({
        line: `${c.method} ${c.path}`,
        body: c.body,
      }));
    },
    get aborted() {
      return up.aborted;
    },
    close: () => up.close(),
  };
}

/** A worker (signatures unchecked) on a model server that redirects `/away` to `other`. */
async function withWorker(
  fn: (ctx: {
    url: string;
    model: Recorder;
    other: Recorder;
    shutdown: () => Promise<void>;
  }) => Promise<void>,
): Promise<void> {
  const other = startRecorder();
  const model = startRecorder((path) => {
    const m = /^\/away(\d{3})$/.exec(path);
    return m
      ? new Response(null, {
        status: Number(m[1]),
        headers: { location: `${other.url}/stolen` },
      })
      : Response.json({ ok: true });
  });
  const w = await startWorker({
    modelServerUrl: model.url,
    handlers: [{ route: "/echo", allowParallelRequests: true }],
  });
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    await fn({ url: w.url, model, other, shutdown: () => w.shutdown() });
  } finally {
    await w.stop();
    await model.close();
    await other.close();
  }
}

async function create(
  base: string,
  options: Record<string, unknown>,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await post(
    base,
    "/session/create",
    JSON.stringify({
      auth_data: UNSIGNED_AUTH,
      payload: { lifetime: 60, ...options },
    }),
  );
  return { status: res.status, json: await res.json() };
}

async function end(base: string, id: string): Promise<number> {
  const res = await post(
    base,
    "/session/end",
    JSON.stringify({ session_id: id, session_auth: UNSIGNED_AUTH }),
  );
  await res.body?.cancel();
  return res.status;
}

Deno.test("an on_close_route that is not a plain path is refused with 422 naming it, and nothing is called", async () => {
  await withWorker(async ({ url, model, other, shutdown }) => {
    const host = `127.0.0.1:${other.port}`;
    const bad: unknown[] = [
      `${other.url}/x`,
      `https://${host}/x`,
      `HTTP://${host}/x`,
      `//${host}/x`,
      `@${host}/x`,
      `/@${host}/x`,
      `\\\\${host}\\x`,
      `/\\${host}/x`,
      `/\t/${host}/x`,
      `/\n/${host}/x`,
      "/close\u0000",
      "/close\u007f",
      "close",
      "javascript:alert(1)",
      "file:///etc/passwd",
      `/${"a".repeat(2048)}`,
      42,
      { path: "/close" },
    ];
    for (const route of bad) {
      const res = await create(url, { on_close_route: route });
      const what = JSON.stringify(route).slice(0, 60);
      assert.equal(res.status, 422, what);
      const errors = res.json.payload as Record<string, unknown>;
      assert.deepEqual(Object.keys(errors), ["on_close_route"], what);
      assert.equal(typeof errors.on_close_route, "string", what);
    }
    // A path at the limit is fine.
    const long = await create(url, { on_close_route: `/${"a".repeat(2047)}` });
    assert.equal(long.status, 201);
    assert.equal(await end(url, String(long.json.session_id)), 200);

    const big = await create(url, {
      on_close_route: "/close",
      on_close_payload: { pad: "x".repeat(64 * 1024) },
    });
    assert.equal(big.status, 422);
    assert.deepEqual(Object.keys(big.json.payload as object), [
      "on_close_payload",
    ]);
    assert.match(
      String((big.json.payload as Record<string, unknown>).on_close_payload),
      /at most 65536/,
    );

    const status = await (await fetch(`${url}/status`)).json();
    assert.equal(status.sessions, 0, "no refused session was opened");
    await shutdown();
    assert.deepEqual(other.seen, []);
    assert.deepEqual(model.seen.map((s) => s.line), [
      `POST /${"a".repeat(2047)}`,
    ]);
  });
});

Deno.test('a path on_close_route is called once on the model server, whether ended or expired; "" means none', async () => {
  await withWorker(async ({ url, model, other, shutdown }) => {
    const ended = await create(url, {
      on_close_route: "/close?via=end",
      on_close_payload: { job: 1 },
    });
    assert.equal(ended.status, 201);
    const expired = await create(url, {
      lifetime: 0.2,
      on_close_route: "/close",
      on_close_payload: { job: 2 },
    });
    assert.equal(expired.status, 201);
    const none = await create(url, { on_close_route: "" });
    assert.equal(none.status, 201);
    assert.equal(await end(url, String(ended.json.session_id)), 200);
    assert.equal(await end(url, String(ended.json.session_id)), 410);
    await waitFor(() => model.seen.length === 2, 3000, "both callbacks");
    assert.equal(await end(url, String(none.json.session_id)), 200);
    // Shutdown waits for every callback: a duplicate would be here by now.
    await shutdown();
    assert.deepEqual(
      model.seen.sort((a, b) =>
        JSON.stringify(a.body).localeCompare(JSON.stringify(b.body))
      ),
      [
        {
          line: "POST /close",
          body: { job: 1, session_id: ended.json.session_id },
        },
        {
          line: "POST /close",
          body: { job: 2, session_id: expired.json.session_id },
        },
      ],
    );
    assert.deepEqual(other.seen, []);
  });
});

Deno.test("a redirect answered by the model server's close route is not followed", async () => {
  await withWorker(async ({ url, model, other, shutdown }) => {
    for (const code of [302, 307, 308]) {
      const res = await create(url, {
        on_close_route: `/away${code}`,
        on_close_payload: { code },
      });
      assert.equal(res.status, 201);
      assert.equal(await end(url, String(res.json.session_id)), 200);
    }
    await waitFor(() => model.seen.length === 3, 3000, "the three callbacks");
    await shutdown();
    assert.deepEqual(model.seen.map((s) => s.line).sort(), [
      "POST /away302",
      "POST /away307",
      "POST /away308",
    ]);
    assert.deepEqual(other.seen, [], "the redirect target got nothing");
  });
});

/** Opens a 60 s session in `store` whose close calls `route`. */
function sessionClosingTo(store: SessionStore, route: string) {
  const s = store.create({
    info: { requestIdx: 1, reqnum: 1, route: "/session/create", workload: 1 },
    authData: UNSIGNED_AUTH,
    lifetime: 60,
    onCloseRoute: route,
    onClosePayload: null,
  });
  assert.ok(s);
  return s;
}

Deno.test("an on_close_route call that hangs is abandoned after the timeout", async () => {
  const model = startRecorder((_path, req) =>
    new Promise((resolve) =>
      req.signal.addEventListener("abort", () => resolve(new Response(null)))
    )
  );
  const store = new SessionStore({
    ledger: new Ledger({ maxFinished: 10 }),
    maxSessions: 0,
    modelServerUrl: `${model.url}/prefix/ignored`,
    onCloseTimeoutMs: 100,
  });
  try {
    const s = sessionClosingTo(store, "/hang");
    // Shutdown waits for the callback, which the timeout ends.
    await store.shutdown();
    assert.deepEqual(model.seen, [{
      line: "POST /hang",
      body: { session_id: s.id },
    }]);
    await waitFor(() => model.aborted === 1, 2000, "call aborted");
  } finally {
    await store.shutdown();
    await model.close();
  }
});

Deno.test("an on_close_route call the model server takes and drops unanswered is not sent again", async () => {
  // One answer per connection, then the next request is read and dropped.
  await using model = startIdleClosingServer({
    idleMs: 60_000,
    dropAfter: 1,
  });
  const store = new SessionStore({
    ledger: new Ledger({ maxFinished: 10 }),
    maxSessions: 0,
    modelServerUrl: model.url,
  });
  try {
    // A first call leaves a pooled connection that on_close reuses (one
    // process, one fetch pool).
    const warm = await fetch(`${model.url}/warm`, { method: "POST" });
    await warm.body?.cancel();
    sessionClosingTo(store, "/closed");
    await store.shutdown();
    // A resent string body would arrive a second time, on a new connection.
    assert.equal(model.arrivals, 2);
    assert.equal(model.connections, 1);
  } finally {
    await store.shutdown();
  }
});
