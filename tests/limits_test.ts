/**
 * Size limits through a real worker: the body limit (declared and chunked
 * bodies, its default, its ceiling), memory that follows the bytes
 * received, deep JSON, huge headers.
 */
import assert from "node:assert/strict";
import { assertEnvRefused } from "./helpers/env.ts";
import type { WorkerConfig } from "../lib/config/schemas.ts";
import { readEnv } from "../lib/config/env.ts";
import { readJsonBody } from "../lib/http/json.ts";
import { Worker } from "../lib/worker/worker.ts";
import { spawnYamlWorker, waitReady } from "./e2e/_scenario.ts";
import {
  parseAnswer,
  rawConnect,
  readUntilClosed,
} from "./helpers/raw_http.ts";
import { startUpstream, type UpstreamHandle } from "./helpers/upstream.ts";
import {
  envelope,
  FAST,
  type Running,
  withUpstreamWorker,
} from "./helpers/worker.ts";
import { post } from "./helpers/http.ts";

const HANDLERS: WorkerConfig["handlers"] = [
  { route: "/echo", allowParallelRequests: true },
];

function withWorker(
  env: Record<string, string>,
  fn: (w: Running, up: UpstreamHandle) => Promise<void>,
): Promise<void> {
  return withUpstreamWorker(HANDLERS, fn, env);
}

/** An envelope of exactly `size` bytes (ASCII). */
function bodyOfSize(size: number): string {
  const empty = envelope({ pad: "" });
  const text = envelope({ pad: "x".repeat(size - empty.length) });
  assert.equal(text.length, size);
  return text;
}

/** A body sent chunked: no content-length for the worker to check. */
function chunked(text: string, chunkSize = 300): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.slice(at, at + chunkSize));
      at += chunkSize;
    },
  });
}

async function assertTooLarge(res: Response): Promise<void> {
  assert.equal(res.status, 413);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.deepEqual(await res.json(), {
    error: "request body larger than 1000 bytes",
    limit: 1000,
  });
}

Deno.test("over EDGEWORKER_MAX_BODY_BYTES a body gets 413 naming the limit, declared or chunked", async () => {
  await withWorker({ EDGEWORKER_MAX_BODY_BYTES: "1000" }, async (w, up) => {
    const big = bodyOfSize(2000);
    // With content-length.
    await assertTooLarge(await post(w.url, "/echo", big));
    // Chunked: the worker has to count as it reads.
    const res = await fetch(`${w.url}/echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chunked(big),
    });
    await assertTooLarge(res);
    assert.equal(up.bodies.length, 0);

    // Up to the limit passes, declared and chunked.
    const small = bodyOfSize(1000);
    const ok = await post(w.url, "/echo", small);
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    const okChunked = await fetch(`${w.url}/echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chunked(small),
    });
    assert.equal(okChunked.status, 200);
    const echoed = await okChunked.json();
    assert.equal(
      echoed.received.pad.length,
      JSON.parse(small).payload.pad.length,
    );
    assert.equal(up.bodies.length, 2);
  });
});

Deno.test("the session routes honour EDGEWORKER_MAX_BODY_BYTES too", async () => {
  await withWorker({ EDGEWORKER_MAX_BODY_BYTES: "1000" }, async (w) => {
    const auth = JSON.parse(envelope({})).auth_data;
    const big = JSON.stringify({
      auth_data: auth,
      payload: { lifetime: 60, on_close_payload: { pad: "x".repeat(2000) } },
    });
    await assertTooLarge(await post(w.url, "/session/create", big));
    const res = await fetch(`${w.url}/session/create`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chunked(big),
    });
    await assertTooLarge(res);
    const fat = JSON.stringify({
      session_id: "x".repeat(2000),
      session_auth: auth,
    });
    for (const route of ["/session/get", "/session/health", "/session/end"]) {
      await assertTooLarge(await post(w.url, route, fat));
    }
    assert.equal(w.ledger.inFlightCount, 0, "a session was opened");
  });
});

Deno.test("deep JSON on the session routes gets 422, not a stack overflow", async () => {
  await withWorker({}, async (w) => {
    const auth = JSON.parse(envelope({})).auth_data;
    const deep = "[".repeat(20_000) + "]".repeat(20_000);
    const authText = JSON.stringify({ ...auth, deep: 0 }).replace(
      '"deep":0',
      `"deep":${deep}`,
    );
    const create = await post(
      w.url,
      "/session/create",
      `{"auth_data": ${authText}, "payload": {"lifetime": 60}}`,
    );
    assert.equal(create.status, 422);
    assert.match((await create.json()).error, /nested deeper/);
    assert.equal(w.ledger.inFlightCount, 0, "a session was opened");

    // A real session, then a deep session_auth against it.
    const ok = await post(
      w.url,
      "/session/create",
      JSON.stringify({ auth_data: auth, payload: { lifetime: 60 } }),
    );
    assert.equal(ok.status, 201);
    const { session_id } = await ok.json();
    for (const route of ["/session/get", "/session/health", "/session/end"]) {
      const res = await post(
        w.url,
        route,
        `{"session_id": "${session_id}", "session_auth": ${authText}}`,
      );
      assert.equal(res.status, 422, route);
      await res.body?.cancel();
    }
    const end = await post(
      w.url,
      "/session/end",
      JSON.stringify({ session_id, session_auth: auth }),
    );
    assert.equal(end.status, 200);
    await end.body?.cancel();
  });
});

Deno.test("under the default limit a 20 MB body passes whole", async () => {
  await withWorker({}, async (w, up) => {
    const pad = "b".repeat(20 * 1024 * 1024);
    const res = await post(w.url, "/echo", envelope({ pad }));
    assert.equal(res.status, 200);
    const echoed = await res.json();
    assert.equal(echoed.received.pad.length, pad.length);
    assert.equal((up.bodies[0].pad as string).length, pad.length);
  });
});

Deno.test("very deep JSON gets 422 and the worker keeps serving", async () => {
  await withWorker({}, async (w, up) => {
    const deepArray = "[".repeat(100_000) + "]".repeat(100_000);
    const deepPayload = `{"auth_data": ${
      JSON.stringify(JSON.parse(envelope({})).auth_data)
    }, "payload": {"a": ${"[".repeat(600)}${"]".repeat(600)}}}`;
    const deepObjects = '{"a":'.repeat(50_000) + "1" + "}".repeat(50_000);
    for (const text of [deepArray, deepPayload, deepObjects]) {
      const res = await post(w.url, "/echo", text);
      assert.equal(res.status, 422);
      assert.match((await res.json()).error, /nested deeper than \d+ levels/);
    }
    assert.equal(up.bodies.length, 0);
    // Moderate nesting is fine.
    const nested = JSON.parse(`${"[".repeat(50)}1${"]".repeat(50)}`);
    const ok = await post(w.url, "/echo", envelope({ nested }));
    assert.equal(ok.status, 200);
    assert.deepEqual((await ok.json()).received, { nested });
  });
});

Deno.test("a 64 KB header gets a 4xx, not a crash, and the worker keeps serving", async () => {
  await withWorker({}, async (w) => {
    const res = await fetch(`${w.url}/echo`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-huge": "h".repeat(64 * 1024),
      },
      body: envelope({ n: 1 }),
    });
    // Deno's HTTP server answers 400 today; any client error will do.
    assert.ok(res.status >= 400 && res.status < 500, String(res.status));
    await res.body?.cancel();
    const after = await post(w.url, "/echo", envelope({ n: 2 }));
    assert.equal(after.status, 200);
    await after.body?.cancel();
  });
});

// The plain-HTTP port reads bodies too: it must honour the same limit.
Deno.test({
  name: "the plain-HTTP port's /session/end honours the body limit",
  fn: async () => {
    const up = startUpstream();
    const dir = await Deno.makeTempDir({ prefix: "edgeworker-limits-" });
    const w = await new Worker({ modelServerUrl: up.url, handlers: HANDLERS })
      .start({
        env: {
          UNSECURED: "true",
          EDGEWORKER_HOST: "127.0.0.1",
          EDGEWORKER_BENCHMARK_FILE: `${dir}/.has_benchmark`,
          EDGEWORKER_MAX_BODY_BYTES: "1000",
        },
        port: 0,
        httpPort: 0,
        timings: FAST,
      });
    try {
      const fat = JSON.stringify({
        session_id: "x".repeat(2000),
        session_auth: {},
      });
      await assertTooLarge(
        await post(`http://127.0.0.1:${w.httpPort}`, "/session/end", fat),
      );
    } finally {
      await w.shutdown();
      await up.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("a body announced over the default 256 MiB limit gets 413 before any of it is read, and its connection is closed", async () => {
  await withWorker({}, async (w, up) => {
    const conn = await rawConnect(
      w.port,
      "POST /echo HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n" +
        "content-length: 1073741824\r\n\r\n{",
    );
    const out = await readUntilClosed(conn, 5000);
    assert.equal(out.closed, true);
    assert.deepEqual(parseAnswer(out.text), {
      status: 413,
      body: {
        error: "request body larger than 268435456 bytes",
        limit: 268435456,
      },
    });
    assert.equal(up.bodies.length, 0);
  });
});

Deno.test("EDGEWORKER_MAX_BODY_BYTES above V8's longest string is refused at start, naming the maximum", () => {
  assertEnvRefused(
    { EDGEWORKER_MAX_BODY_BYTES: String(2 ** 30) },
    "EDGEWORKER_MAX_BODY_BYTES",
    /536870888/,
  );
  assert.equal(
    readEnv({ EDGEWORKER_MAX_BODY_BYTES: "536870888" })
      .EDGEWORKER_MAX_BODY_BYTES,
    536870888,
  );
});

Deno.test("a body limit over V8's longest string is capped: 413, not 'string too long'", async () => {
  // As a caller passing its own limit would: 600 MB announced, 1 GB allowed.
  const req = new Request("http://127.0.0.1/echo", {
    method: "POST",
    headers: { "content-length": "600000000" },
    body: new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode("{}"));
        c.close();
      },
    }),
  });
  const res = await readJsonBody(req, 1_000_000_000);
  assert.ok(res instanceof Response);
  assert.equal(res.status, 413);
  assert.deepEqual(await res.json(), {
    error: "request body larger than 536870888 bytes",
    limit: 536870888,
  });
});

Deno.test("memory follows the bytes received: 100 connections announcing 200 MiB bodies cost the worker little", async () => {
  const up = startUpstream();
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-rss-" });
  const main = new URL("../main.ts", import.meta.url).pathname;
  const w = await spawnYamlWorker(dir, ["run", "-A", main], [
    `modelServerUrl: ${up.url}`,
    "handlers:",
    "  - { route: /echo }",
  ], { EDGEWORKER_BENCHMARK: "skip" });
  const stderr = new Response(w.child.stderr).text();
  const stdout = w.child.stdout.cancel();
  const conns: Deno.Conn[] = [];
  try {
    await waitReady(w.base);
    const rss = async () =>
      Number(
        (await Deno.readTextFile(`/proc/${w.child.pid}/status`))
          .match(/VmRSS:\s+(\d+) kB/)![1],
      ) * 1024;
    const before = await rss();
    const port = Number(new URL(w.base).port);
    for (let i = 0; i < 100; i++) {
      conns.push(
        await rawConnect(
          port,
          "POST /echo HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n" +
            `content-length: ${200 * 1024 * 1024}\r\n\r\n{"auth_data"`,
        ),
      );
    }
    await new Promise((r) => setTimeout(r, 3000));
    const grown = (await rss()) - before;
    // 20 GiB announced, about 1 KiB sent. Read with req.text(), Deno sized
    // its buffers from the announced length: 0.35 to 1 GB in 3 s here.
    assert.ok(grown < 128 * 1024 * 1024, `RSS grew by ${grown} bytes`);
  } finally {
    for (const c of conns) c.close();
    w.child.kill("SIGTERM");
    await w.child.status;
    await stdout;
    await stderr;
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});
