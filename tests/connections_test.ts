/**
 * Connections through a real worker: idle keep-alive connections, headers
 * never finished and bodies that stop are closed after their (shortened)
 * timeouts; requests in flight are never cut; running out of file
 * descriptors does not stop the worker.
 */
import { delay } from "../lib/std/async.ts";
import { assertEnvRefused } from "./helpers/env.ts";
import assert from "node:assert/strict";
import type { WorkerConfig } from "../lib/config/schemas.ts";
import { readEnv } from "../lib/config/env.ts";
import { raiseFdLimit } from "../lib/worker/fd_limit.ts";
import { freePort, waitReady, workerEnv } from "./e2e/_scenario.ts";
import {
  parseAnswer,
  rawConnect,
  readResponse,
  readUntilClosed,
  writeAll,
} from "./helpers/raw_http.ts";
import { startUpstream } from "./helpers/upstream.ts";
import { post } from "./helpers/http.ts";
import { envelope, withUpstreamWorker } from "./helpers/worker.ts";

const HANDLERS: WorkerConfig["handlers"] = [
  { route: "/echo", allowParallelRequests: true },
  { route: "/slow", allowParallelRequests: true },
  { route: "/stream", allowParallelRequests: true },
];

/** Generous: how long a test waits for a close that should come. */
const WAIT_MS = 5000;

/** A keep-alive `GET /health`. */
const HEALTH_GET = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

/** A body no route reads (404), announced and never finished. */
const UNREAD_BODY =
  "POST /nowhere HTTP/1.1\r\nHost: x\r\ncontent-length: 100000\r\n\r\nabc";

Deno.test("an idle keep-alive connection is closed after EDGEWORKER_KEEPALIVE_SECONDS; requests in flight are not cut", async () => {
  await withUpstreamWorker(HANDLERS, async (w) => {
    // Two requests on one connection, then it is left idle.
    const conn = await rawConnect(w.port, HEALTH_GET);
    assert.equal((await readResponse(conn))?.status, 200);
    await delay(100);
    await writeAll(conn, HEALTH_GET);
    assert.equal((await readResponse(conn))?.status, 200, "reused");
    assert.deepEqual(await readUntilClosed(conn, WAIT_MS), {
      text: "",
      closed: true,
    });

    // A stream that lasts three keep-alive timeouts arrives whole, and so
    // does an answer that takes that long to start.
    const stream = await post(
      w.url,
      "/stream",
      envelope({ chunks: 6, gap_ms: 150 }),
    );
    assert.equal(stream.status, 200);
    const text = await stream.text();
    assert.equal(text.match(/data: \{"i":\d\}/g)?.length, 6);
    assert.match(text, /data: \[DONE\]/);
    const slow = await post(
      w.url,
      "/slow",
      envelope({ delay_ms: 900, seq: 1 }),
    );
    assert.equal(slow.status, 200);
    assert.deepEqual(await slow.json(), { seq: 1 });

    // An 8 MB answer that the client starts reading only after three
    // timeouts is still written whole (Deno counts it done before).
    const pad = "p".repeat(8 * 1024 * 1024);
    const body = envelope({ pad });
    const big = await rawConnect(
      w.port,
      "POST /echo HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n" +
        `content-length: ${body.length}\r\n\r\n${body}`,
    );
    await delay(1000);
    const answer = await readResponse(big);
    big.close();
    assert.equal(answer?.status, 200);
    assert.equal(JSON.parse(answer!.body).received.pad.length, pad.length);
  }, { EDGEWORKER_KEEPALIVE_SECONDS: "0.3" });
});

Deno.test("a connection that never finishes its headers is closed after EDGEWORKER_HEADERS_SECONDS", async () => {
  await withUpstreamWorker(HANDLERS, async (w) => {
    const loris = await rawConnect(
      w.port,
      "GET /health HTTP/1.1\r\nHost: x\r\n",
    );
    const silent = await rawConnect(w.port);
    const [a, b] = await Promise.all([
      readUntilClosed(loris, WAIT_MS),
      readUntilClosed(silent, WAIT_MS),
    ]);
    assert.deepEqual(a, { text: "", closed: true }, "slowloris");
    assert.deepEqual(b, { text: "", closed: true }, "silent connection");
    // The worker still serves.
    const ok = await fetch(`${w.url}/health`);
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  }, { EDGEWORKER_HEADERS_SECONDS: "0.3" });
});

Deno.test("a body that does not arrive within EDGEWORKER_BODY_SECONDS gets 408 and its connection is closed", async () => {
  await withUpstreamWorker(HANDLERS, async (w, up) => {
    const head = "POST /echo HTTP/1.1\r\nHost: x\r\n" +
      "content-type: application/json\r\n";
    const slow = [
      // Small announced body (read whole by Deno), large one (read chunk by
      // chunk), chunked one: each stops after a few bytes.
      `${head}content-length: 100\r\n\r\n{"auth_data"`,
      `${head}content-length: 1000000\r\n\r\n{"auth_data"`,
      `${head}transfer-encoding: chunked\r\n\r\nc\r\n{"auth_data"\r\n`,
    ];
    const outcomes = await Promise.all(
      slow.map(async (text) =>
        readUntilClosed(await rawConnect(w.port, text), WAIT_MS)
      ),
    );
    for (const [i, o] of outcomes.entries()) {
      assert.equal(o.closed, true, `body ${i} closed`);
      assert.deepEqual(parseAnswer(o.text), {
        status: 408,
        body: {
          error: "request body not received within 0.4 s",
          timeout_seconds: 0.4,
        },
      });
    }
    assert.equal(up.bodies.length, 0);
    // A route that reads no body answers, and the connection is closed
    // rather than left draining a body that never ends.
    const unread = await readUntilClosed(
      await rawConnect(w.port, UNREAD_BODY),
      WAIT_MS,
    );
    assert.equal(unread.closed, true, "unread body: closed");
    assert.equal(parseAnswer(unread.text).status, 404);
    // A body that comes in time still passes.
    const ok = await post(w.url, "/echo", envelope({ n: 1 }));
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { received: { n: 1 } });
  }, { EDGEWORKER_BODY_SECONDS: "0.4" });
});

Deno.test("shutdown lets a request in flight finish and does not wait for idle or draining connections", async () => {
  await withUpstreamWorker(HANDLERS, async (w) => {
    const idle = await rawConnect(w.port, HEALTH_GET);
    assert.equal((await readResponse(idle))?.status, 200);
    const silent = await rawConnect(w.port);
    // Answered, with a body that never ends left unread.
    const draining = await rawConnect(w.port, UNREAD_BODY);
    assert.equal((await readResponse(draining))?.status, 404);
    const slow = post(w.url, "/slow", envelope({ delay_ms: 400, seq: 7 }));
    await delay(100);
    const down = w.shutdown();
    const res = await slow;
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { seq: 7 });
    await down;
    const closed = await Promise.all(
      [idle, silent, draining].map(async (c) =>
        (await readUntilClosed(c, WAIT_MS)).closed
      ),
    );
    assert.deepEqual(closed, [true, true, true]);
  });
});

Deno.test("bad connection timeouts are refused naming the variable", () => {
  for (
    const name of [
      "EDGEWORKER_HEADERS_SECONDS",
      "EDGEWORKER_KEEPALIVE_SECONDS",
      "EDGEWORKER_BODY_SECONDS",
    ]
  ) {
    assertEnvRefused({ [name]: "-1" }, name);
  }
  const env = readEnv({});
  assert.deepEqual(
    [
      env.EDGEWORKER_HEADERS_SECONDS,
      env.EDGEWORKER_KEEPALIVE_SECONDS,
      env.EDGEWORKER_BODY_SECONDS,
    ],
    [30, 75, 300],
  );
});

/** A YAML worker in a subprocess under `ulimit -n <fds>`. */
async function spawnLimitedWorker(dir: string, modelUrl: string, fds: number) {
  const port = freePort();
  const main = new URL("../main.ts", import.meta.url).pathname;
  await Deno.writeTextFile(
    `${dir}/worker.yaml`,
    `modelServerUrl: ${modelUrl}\nhandlers:\n  - { route: /echo }\n`,
  );
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      `ulimit -n ${fds} && exec "$0" run -A "$1" run --config worker.yaml`,
      Deno.execPath(),
      main,
    ],
    cwd: dir,
    env: workerEnv(port, { UNSECURED: "true", EDGEWORKER_BENCHMARK: "skip" }),
    stdout: "null",
    stderr: "piped",
  }).spawn();
  return { child, url: `http://127.0.0.1:${port}`, port };
}

async function health(url: string): Promise<number> {
  const client = Deno.createHttpClient({});
  try {
    const res = await fetch(`${url}/health`, {
      client,
      signal: AbortSignal.timeout(WAIT_MS),
    });
    await res.body?.cancel();
    return res.status;
  } finally {
    client.close();
  }
}

Deno.test("a worker out of file descriptors keeps serving and recovers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-fds-" });
  const up = startUpstream();
  const w = await spawnLimitedWorker(dir, up.url, 256);
  const stderr = new Response(w.child.stderr).text();
  const conns: Deno.Conn[] = [];
  try {
    await waitReady(w.url);
    // More idle connections than the worker has descriptors.
    for (let i = 0; i < 400; i++) conns.push(await rawConnect(w.port));
    await delay(300);
    assert.equal(await health(w.url), 200, "answers while they are held");
    for (const c of conns.splice(0)) c.close();
    await delay(300);
    assert.equal(await health(w.url), 200, "answers after they are closed");
    const exited = await Promise.race([w.child.status, delay(100)]);
    assert.equal(exited, undefined, "the worker is still running");
  } finally {
    for (const c of conns) c.close();
    try {
      w.child.kill("SIGTERM");
    } catch { /* exited */ }
    await w.child.status;
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
  assert.match(await stderr, /Out of file descriptors/);
});

Deno.test("raiseFdLimit raises the soft open-file limit to the hard one", () => {
  const lib = Deno.dlopen("libc.so.6", {
    getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
    setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  });
  const limits = new BigUint64Array(2);
  try {
    assert.equal(lib.symbols.getrlimit(7, limits), 0);
    const hard = limits[1];
    // As a `deno compile` binary starts: soft below hard.
    limits[0] = hard - 1n;
    assert.equal(lib.symbols.setrlimit(7, limits), 0);
    assert.deepEqual(raiseFdLimit(), {
      soft: Number(hard),
      hard: Number(hard),
      raisedFrom: Number(hard) - 1,
    });
    assert.equal(lib.symbols.getrlimit(7, limits), 0);
    assert.equal(limits[0], hard);
  } finally {
    limits[0] = limits[1];
    lib.symbols.setrlimit(7, limits);
    lib.close();
  }
});
