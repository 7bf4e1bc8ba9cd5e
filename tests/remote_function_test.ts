/**
 * Handlers the worker answers itself (`remoteFunction`) and the lifecycle
 * startup hook, through a real worker with signatures checked against RSA
 * keys made here: the same envelope, signature, 429 and ledger behaviour
 * as a route forwarded to a model server, side by side.
 */
import assert from "node:assert/strict";
import type {
  HandlerConfig,
  Payload,
  RemoteFunction,
  WorkerConfig,
} from "../lib/config/schemas.ts";
import { delay } from "../lib/std/async.ts";
import { post, readAll, waitFor } from "./helpers/http.ts";
import {
  generateKeys,
  signedAuth,
  signUrl,
  writePubkeyFile,
} from "./helpers/signing.ts";
import { startUpstream } from "./helpers/upstream.ts";
import {
  envelope,
  type Running,
  startWorker,
  withUpstreamWorker,
} from "./helpers/worker.ts";

const KEYS = await generateKeys();
const OTHER_KEYS = await generateKeys();
const URL_SIGNED = "https://203.0.113.5:41234";
/** Nothing listens here: a remote function's worker never calls it. */
const NO_MODEL = "http://127.0.0.1:9";

/** The scripted model server's `/echo` and `/slow`, as a remote function. */
function echoFunction(calls: Payload[]): RemoteFunction {
  return async (payload, { signal }) => {
    calls.push(payload);
    if (payload.delay_ms) await delay(Number(payload.delay_ms), { signal });
    return { received: payload };
  };
}

/** A worker checking signatures against `KEYS`, with `max_perf` cached at 50. */
async function signedWorker(config: WorkerConfig): Promise<Running> {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-remote-" });
  await Deno.writeTextFile(`${dir}/.has_benchmark`, "50.0");
  const w = await startWorker(config, {
    UNSECURED: "false",
    EDGEWORKER_PUBKEY_FILE: await writePubkeyFile(dir, KEYS.publicPem),
    EDGEWORKER_BENCHMARK_FILE: `${dir}/.has_benchmark`,
  });
  const shutdown = w.shutdown.bind(w);
  return Object.assign(w, {
    shutdown: async (why?: string) => {
      await shutdown(why);
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(w.dir, { recursive: true });
    },
  });
}

function signedBody(
  auth: Record<string, unknown>,
  payload: unknown,
): string {
  return JSON.stringify({ auth_data: auth, payload });
}

interface Observed {
  ok: { status: number; body: unknown };
  notObject: { status: number; body: unknown };
  noAuth: { status: number; body: unknown };
  badSignature: { status: number; body: unknown };
  overBudget: { status: number; retryAfter: string | null; body: unknown };
  records: [number, string, number, string | undefined][];
  window: unknown;
}

/**
 * The scenario every route kind must pass: a signed request, two bad
 * envelopes, a bad signature, and a request over the queue budget (two of
 * 100 units in flight at 50 units/s: 4 s of wait against a 3 s budget).
 */
async function scenario(w: Running, route: string): Promise<Observed> {
  await waitFor(() => w.lifecycle.ready, 5000, "ready");
  const json = async (res: Response) => ({
    status: res.status,
    body: await res.json(),
  });
  const auth = (idx: number) =>
    signedAuth(KEYS.privateKey, URL_SIGNED, { request_idx: idx });
  const ok = await json(
    await post(w.url, route, signedBody(await auth(1), { prompt: "signed" })),
  );
  const notObject = await json(
    await post(w.url, route, signedBody(await auth(2), [1, 2])),
  );
  const noAuth = await json(
    await post(w.url, route, JSON.stringify({ payload: { prompt: "x" } })),
  );
  const badSignature = await json(
    await post(
      w.url,
      route,
      signedBody({
        ...(await auth(3)),
        signature: await signUrl(OTHER_KEYS.privateKey, URL_SIGNED),
      }, { prompt: "forged" }),
    ),
  );
  const slow = [4, 5].map(async (idx) =>
    post(
      w.url,
      route,
      signedBody(await auth(idx), { seq: idx, delay_ms: 800 }),
    )
  );
  await waitFor(() => w.ledger.inFlightCount === 2, 3000, "two in flight");
  const refused = await post(
    w.url,
    route,
    signedBody(await auth(6), { seq: 6 }),
  );
  const overBudget = {
    status: refused.status,
    retryAfter: refused.headers.get("retry-after"),
    body: await refused.json(),
  };
  for (const r of await Promise.all(slow)) {
    assert.equal(r.status, 200);
    await r.body?.cancel();
  }
  await waitFor(() => w.ledger.inFlightCount === 0, 3000, "ledger empty");
  assert.equal(w.ledger.currentLoad, 0);
  return {
    ok,
    notObject,
    noAuth,
    badSignature,
    overBudget,
    records: w.ledger.pendingFinished().map((r) =>
      [
        r.requestIdx as number,
        r.status,
        r.httpStatus,
        r.rejectReason,
      ] as [number, string, number, string | undefined]
    ).sort((a, b) => a[0] - b[0]),
    window: w.ledger.window(),
  };
}

const ROUTE: Omit<HandlerConfig, "route"> = {
  allowParallelRequests: true,
  maxQueueTime: 3,
};

Deno.test("a remote function and a lifecycle worker pass the proxied route's envelope, signature, 429 and ledger scenario", async () => {
  // The scripted model's /echo, delayed by `delay_ms` as the function is.
  const up = startUpstream({
    script: async ({ body }) => {
      const ms = Number((body as Payload | undefined)?.delay_ms ?? 0);
      if (ms) await delay(ms);
      return undefined;
    },
  });
  const proxied = await signedWorker({
    modelServerUrl: up.url,
    handlers: [{ route: "/echo", ...ROUTE }],
  });
  const calls: Payload[] = [];
  const local = await signedWorker({
    modelServerUrl: NO_MODEL,
    handlers: [{
      route: "/echo",
      ...ROUTE,
      remoteFunction: echoFunction(calls),
    }],
  });
  let hookDone = false;
  const lifecycleCalls: Payload[] = [];
  const withHook = await signedWorker({
    modelServerUrl: NO_MODEL,
    lifecycle: async () => {
      await delay(100);
      hookDone = true;
    },
    handlers: [{
      route: "/echo",
      ...ROUTE,
      remoteFunction: echoFunction(lifecycleCalls),
    }],
  });
  try {
    const p = await scenario(proxied, "/echo");
    const l = await scenario(local, "/echo");
    const h = await scenario(withHook, "/echo");
    assert.ok(hookDone);

    assert.deepEqual(p.ok, {
      status: 200,
      body: { received: { prompt: "signed" } },
    });
    // Python's answer of a remote function: {"result": <its value>}.
    for (const o of [l, h]) {
      assert.deepEqual(o.ok, {
        status: 200,
        body: { result: { received: { prompt: "signed" } } },
      });
    }
    for (const o of [l, h]) {
      assert.deepEqual(o.notObject, p.notObject);
      assert.deepEqual(o.noAuth, p.noAuth);
      assert.deepEqual(o.badSignature, p.badSignature);
      assert.deepEqual(o.overBudget, p.overBudget);
      assert.deepEqual(o.records, p.records);
      assert.deepEqual(o.window, p.window);
    }
    assert.equal(p.notObject.status, 422);
    assert.equal(p.noAuth.status, 422);
    assert.equal(p.badSignature.status, 401);
    assert.equal(p.overBudget.status, 429);
    assert.equal(p.overBudget.retryAfter, "1");
    assert.deepEqual(p.records, [
      [1, "success", 200, undefined],
      [3, "rejected", 401, "signature"],
      [4, "success", 200, undefined],
      [5, "success", 200, undefined],
      [6, "rejected", 429, "budget"],
    ]);
    assert.deepEqual(p.window, {
      received: 300,
      served: 300,
      cancelled: 0,
      errored: 0,
      rejected: 200,
    });
    // Refused requests never reached the function, as they never reach a model.
    assert.deepEqual(
      calls.map((c) => c.prompt ?? c.seq).sort(),
      [4, 5, "signed"],
    );
    assert.deepEqual(lifecycleCalls.length, 3);
  } finally {
    await proxied.shutdown();
    await local.shutdown();
    await withHook.shutdown();
    await up.close();
  }
});

/** An unsecured worker (signatures unchecked) serving `handlers` locally. */
async function withLocalWorker(
  handlers: HandlerConfig[],
  fn: (w: Running) => Promise<void>,
  extra: Partial<WorkerConfig> = {},
): Promise<void> {
  const w = await startWorker({ modelServerUrl: NO_MODEL, handlers, ...extra });
  try {
    await waitFor(() => w.lifecycle.ready, 5000, "ready");
    await fn(w);
    await waitFor(() => w.ledger.inFlightCount === 0, 3000, "ledger empty");
    assert.equal(w.ledger.currentLoad, 0);
  } finally {
    await w.shutdown();
    await Deno.remove(w.dir, { recursive: true });
  }
}

Deno.test("a remote function that throws answers 500 naming it and is recorded as an error", async () => {
  await withLocalWorker([{
    route: "/boom",
    remoteFunction: () => {
      throw new Error("no GPU today");
    },
  }], async (w) => {
    const res = await post(w.url, "/boom", envelope({ x: 1 }));
    assert.equal(res.status, 500);
    assert.deepEqual(await res.json(), {
      error: "remote function failed: no GPU today",
    });
    const [rec] = w.ledger.pendingFinished();
    assert.equal(rec.status, "error");
    assert.equal(rec.httpStatus, 500);
    assert.equal(w.ledger.window().errored, 100);
  });
});

Deno.test("a client that leaves aborts the remote function's signal and is recorded as cancelled", async () => {
  let aborted = false;
  await withLocalWorker([{
    route: "/hold",
    allowParallelRequests: true,
    remoteFunction: async (_p, { signal }) => {
      await new Promise<void>((resolve) =>
        signal.addEventListener("abort", () => {
          aborted = true;
          resolve();
        })
      );
      return "too late";
    },
  }], async (w) => {
    const client = new AbortController();
    const req = post(w.url, "/hold", envelope({}), { signal: client.signal })
      .catch(() => undefined);
    await waitFor(() => w.ledger.inFlightCount === 1);
    client.abort();
    await req;
    await waitFor(() => aborted, 3000, "the function's signal");
    await waitFor(() => w.ledger.inFlightCount === 0);
    const [rec] = w.ledger.pendingFinished();
    assert.equal(rec.status, "cancelled");
    assert.equal(rec.httpStatus, 499);
  });
});

Deno.test("a remote function that ignores its signal still gets the first-byte timeout: 504, slot freed", async () => {
  await withLocalWorker([{
    route: "/never",
    timeouts: { firstByte: 0.3 },
    remoteFunction: () => new Promise(() => {}),
  }, {
    route: "/quick",
    remoteFunction: () => "ok",
  }], async (w) => {
    const res = await post(w.url, "/never", envelope({}));
    assert.equal(res.status, 504);
    assert.equal((await res.json()).timeout, "first_byte");
    // The FIFO slot is free again: the next request runs at once.
    const next = await post(w.url, "/quick", envelope({}));
    assert.deepEqual(await next.json(), { result: "ok" });
    const statuses = w.ledger.pendingFinished().map((r) => r.httpStatus);
    assert.deepEqual(statuses, [504, 200]);
  });
});

Deno.test("FIFO remote functions run one at a time, in arrival order", async () => {
  let running = 0;
  let most = 0;
  const order: number[] = [];
  await withLocalWorker([{
    route: "/one",
    remoteFunction: async (p) => {
      running++;
      most = Math.max(most, running);
      order.push(Number(p.seq));
      await delay(30);
      running--;
      return p.seq;
    },
  }], async (w) => {
    const answers = [];
    for (let seq = 1; seq <= 5; seq++) {
      answers.push(
        post(w.url, "/one", envelope({ seq }, { request_idx: seq })),
      );
      await waitFor(() =>
        w.ledger.inFlightCount + w.ledger.pendingFinished().length === seq
      );
    }
    const bodies = await Promise.all(
      (await Promise.all(answers)).map((r) => r.json()),
    );
    assert.deepEqual(bodies.map((b) => b.result), [1, 2, 3, 4, 5]);
    assert.deepEqual(order, [1, 2, 3, 4, 5]);
    assert.equal(most, 1);
  });
});

Deno.test("a remote function's Response is relayed like a model's (headers filtered), an async iterable streams JSON lines", async () => {
  await withLocalWorker([{
    route: "/made",
    allowParallelRequests: true,
    remoteFunction: () =>
      new Response("made here", {
        status: 201,
        headers: {
          "content-type": "text/plain",
          "x-request-id": "local-1",
          "set-cookie": "a=b",
        },
      }),
  }, {
    route: "/lines",
    allowParallelRequests: true,
    remoteFunction: async function* (p) {
      for (let i = 0; i < Number(p.n); i++) {
        await delay(5);
        yield { i };
      }
    },
  }], async (w) => {
    const made = await post(w.url, "/made", envelope({}));
    assert.equal(made.status, 201);
    assert.equal(await made.text(), "made here");
    assert.equal(made.headers.get("x-request-id"), "local-1");
    assert.equal(made.headers.get("set-cookie"), null);

    const lines = await post(w.url, "/lines", envelope({ n: 3 }));
    assert.equal(lines.headers.get("content-type"), "application/x-ndjson");
    assert.equal(
      (await readAll(lines)).text,
      '{"i":0}\n{"i":1}\n{"i":2}\n',
    );
    await waitFor(() => w.ledger.inFlightCount === 0);
    const rec = w.ledger.pendingFinished().find((r) => r.route === "/lines")!;
    assert.equal(rec.status, "success");
    assert.equal(rec.chunks, 3);
  });
});

Deno.test("the request parser runs before the remote function, and responseGenerator is told the client's request", async () => {
  await withUpstreamWorker([{
    route: "/echo",
    unwrapInput: true,
    responseGenerator: async (response, { request, payload }) =>
      Response.json({
        model: await response.json(),
        client: request.headers.get("x-client"),
        path: new URL(request.url).pathname,
        payload,
      }),
  }, {
    route: "/local",
    unwrapInput: true,
    remoteFunction: (p) => p,
    responseGenerator: async (response, { request }) =>
      Response.json({
        local: await response.json(),
        client: request.headers.get("x-client"),
      }),
  }], async (w) => {
    // The client's request carries a header of its own.
    const call = async (route: string, input: unknown) =>
      await (await post(w.url, route, envelope({ input }), {
        headers: { "content-type": "application/json", "x-client": "abc" },
      })).json();
    assert.deepEqual(await call("/echo", { q: 1 }), {
      model: { received: { q: 1 } },
      client: "abc",
      path: "/echo",
      payload: { q: 1 },
    });
    assert.deepEqual(await call("/local", { q: 2 }), {
      local: { result: { q: 2 } },
      client: "abc",
    });
  });
});

Deno.test("lifecycle: loading until the hook resolves, then the remote function is benchmarked, ready, and the hook's stop runs at shutdown", async () => {
  const gate = Promise.withResolvers<void>();
  let benchmarked = 0;
  let stopped = false;
  const w = await startWorker({
    modelServerUrl: NO_MODEL,
    lifecycle: async () => {
      await gate.promise;
      return () => {
        stopped = true;
      };
    },
    handlers: [{
      route: "/reserve",
      workload: () => 100,
      remoteFunction: async (p) => {
        if (p.benchmark) {
          benchmarked++;
          await delay(200);
        }
        return { ok: true };
      },
      benchmark: {
        generator: () => ({ benchmark: true }),
        runs: 1,
        concurrency: 1,
        warmup: false,
      },
    }],
  });
  try {
    await delay(300);
    assert.equal(w.lifecycle.state, "loading");
    const notYet = await fetch(`${w.url}/ready`);
    assert.equal(notYet.status, 503);
    await notYet.body?.cancel();
    assert.equal(benchmarked, 0);
    gate.resolve();
    await waitFor(() => w.lifecycle.ready, 5000, "ready");
    assert.equal(benchmarked, 1);
    const status = await (await fetch(`${w.url}/status`)).json();
    // 100 units in at least 0.2 s: the function's time was measured.
    assert.ok(status.max_perf > 0 && status.max_perf <= 520, status.max_perf);
    assert.ok(Number(await Deno.readTextFile(`${w.dir}/.has_benchmark`)) > 0);
    assert.equal(stopped, false);
  } finally {
    await w.shutdown();
    await Deno.remove(w.dir, { recursive: true });
  }
  assert.equal(stopped, true);
});

Deno.test("lifecycle: a hook that throws is a fatal error naming it, and the worker never becomes ready", async () => {
  const w = await startWorker({
    modelServerUrl: NO_MODEL,
    lifecycle: () => Promise.reject(new Error("queue broker unreachable")),
    handlers: [{ route: "/x", remoteFunction: () => 1 }],
  });
  try {
    await waitFor(() => w.lifecycle.state === "error", 3000, "error");
    assert.equal(
      w.lifecycle.errorMsg,
      "Lifecycle startup failed: queue broker unreachable",
    );
    assert.equal(w.lifecycle.fatal, true);
    const ready = await fetch(`${w.url}/ready`);
    assert.equal(ready.status, 503);
    assert.equal(
      (await ready.json()).error_msg,
      "Lifecycle startup failed: queue broker unreachable",
    );
  } finally {
    await w.shutdown();
    await Deno.remove(w.dir, { recursive: true });
  }
});
