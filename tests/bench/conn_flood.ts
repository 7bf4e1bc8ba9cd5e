/**
 * `deno run -A tests/bench/conn_flood.ts <scenario>`: what hostile
 * connections cost a worker subprocess, on 127.0.0.1 only, bounded in count
 * and time. Figures, not assertions (the tests assert behaviour).
 *
 * - `rss`: FLOOD_CONNS connections (200) send headers announcing a body of
 *   FLOOD_ANNOUNCE bytes (1 GiB) and one byte of it, then hold for
 *   FLOOD_HOLD_MS (3000); the worker's resident memory before and after.
 * - `close`: seconds until the worker closes an idle keep-alive connection,
 *   a slowloris (headers never finished) and a slow body.
 * - `fds`: the worker under `ulimit -n FLOOD_ULIMIT` (1024) gets
 *   FLOOD_CONNS (1000) idle connections; is it alive, and does it answer
 *   while they are held and after they are closed?
 *
 * - `streams`: under the same limit, FLOOD_CONNS (600) SSE streams at once,
 *   each on its own connection (each holds two descriptors: client and
 *   model); what the clients got, and is the worker alive?
 *
 * `FLOOD_MAIN` points at another checkout's `main.ts` (before/after);
 * `FLOOD_ENV` adds worker variables (`A=1,B=2`).
 *
 * @module
 */
import { delay } from "../../lib/std/async.ts";
import { freePort, waitReady, workerEnv } from "../e2e/_scenario.ts";

const MAIN = Deno.env.get("FLOOD_MAIN") ??
  new URL("../../main.ts", import.meta.url).pathname;
const CONNS = Number(Deno.env.get("FLOOD_CONNS") ?? 200);
const ANNOUNCE = Number(Deno.env.get("FLOOD_ANNOUNCE") ?? 2 ** 30);
const HOLD_MS = Number(Deno.env.get("FLOOD_HOLD_MS") ?? 3000);
const STREAM_MS = Number(Deno.env.get("FLOOD_STREAM_MS") ?? 300);
const ULIMIT = Number(Deno.env.get("FLOOD_ULIMIT") ?? 1024);
const EXTRA_ENV = Object.fromEntries(
  (Deno.env.get("FLOOD_ENV") ?? "").split(",").filter((kv) => kv.includes("="))
    .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
);
const enc = new TextEncoder();

const model = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen: () => {} },
  async (req) => {
    const text = await req.text();
    if (new URL(req.url).pathname !== "/stream") return new Response(text);
    // Ten chunks, STREAM_MS apart.
    let i = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    return new Response(
      new ReadableStream({
        pull: (c) =>
          new Promise<void>((done) => {
            timer = setTimeout(() => {
              if (i++ < 10) c.enqueue(enc.encode(`data: {"i":${i}}\n\n`));
              else c.close();
              done();
            }, STREAM_MS);
          }),
        cancel: () => clearTimeout(timer),
      }),
      { headers: { "content-type": "text/event-stream" } },
    );
  },
);

async function startWorker(ulimit?: number) {
  const dir = await Deno.makeTempDir();
  const port = freePort();
  await Deno.writeTextFile(
    `${dir}/worker.yaml`,
    `modelServerUrl: http://127.0.0.1:${model.addr.port}\nhandlers:\n` +
      `  - { route: /echo, allowParallelRequests: true, maxQueueTime: null }\n` +
      `  - { route: /stream, allowParallelRequests: true, maxQueueTime: null }\n`,
  );
  const deno =
    `exec '${Deno.execPath()}' run -A '${MAIN}' run --config '${dir}/worker.yaml'`;
  const child = new Deno.Command("bash", {
    args: ["-c", ulimit ? `ulimit -n ${ulimit}; ${deno}` : deno],
    cwd: dir,
    env: workerEnv(port, {
      UNSECURED: "true",
      EDGEWORKER_LOG_LEVEL: "warning",
      ...EXTRA_ENV,
    }),
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const url = `http://127.0.0.1:${port}`;
  await waitReady(url);
  return {
    url,
    port,
    pid: child.pid,
    child,
    stderr,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await child.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function rssKb(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(status.match(/VmRSS:\s+(\d+) kB/)?.[1] ?? NaN);
}

async function openConns(port: number, n: number, head?: string) {
  const conns: Deno.Conn[] = [];
  let failed = 0;
  for (let i = 0; i < n; i++) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      if (head) await c.write(enc.encode(head));
      conns.push(c);
    } catch {
      failed++;
    }
  }
  return { conns, failed };
}

/** Milliseconds until the peer closes `conn` (reading and dropping). */
async function msUntilClosed(conn: Deno.Conn, limitMs: number) {
  const t0 = performance.now();
  const buf = new Uint8Array(16384);
  const limit = delay(limitMs).then(() => "limit" as const);
  for (;;) {
    const r = await Promise.race([conn.read(buf).catch(() => null), limit]);
    if (r === "limit") return NaN;
    if (r === null) return performance.now() - t0;
  }
}

async function answers(url: string): Promise<string> {
  try {
    const res = await fetch(`${url}/health`, {
      signal: AbortSignal.timeout(5000),
    });
    await res.body?.cancel();
    return String(res.status);
  } catch (e) {
    return `no answer (${e instanceof Error ? e.message : e})`;
  }
}

async function alive(child: Deno.ChildProcess): Promise<string> {
  const r = await Promise.race([child.status, delay(200).then(() => null)]);
  return r ? `exited with code ${r.code}` : "alive";
}

const scenario = Deno.args[0] ?? "rss";
const w = await startWorker(
  scenario === "fds" || scenario === "streams" ? ULIMIT : undefined,
);
try {
  if (scenario === "rss") {
    const before = await rssKb(w.pid);
    const { conns } = await openConns(
      w.port,
      CONNS,
      "POST /echo HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n" +
        `content-length: ${ANNOUNCE}\r\n\r\n{`,
    );
    await delay(HOLD_MS);
    const during = await rssKb(w.pid);
    let closed = 0;
    await Promise.all(
      conns.map(async (c) => {
        if (!Number.isNaN(await msUntilClosed(c, 300))) closed++;
      }),
    );
    console.log(
      `${CONNS} connections announcing ${ANNOUNCE} bytes: worker RSS ${before} kB before, ` +
        `${during} kB after ${
          HOLD_MS / 1000
        } s; ${closed} answered and closed at once; ` +
        `health ${await answers(w.url)}, ${await alive(w.child)}`,
    );
    for (const c of conns) c.close();
  } else if (scenario === "close") {
    const limit = Number(Deno.env.get("FLOOD_LIMIT_MS") ?? 400_000);
    const idle = await Deno.connect({ hostname: "127.0.0.1", port: w.port });
    await idle.write(enc.encode("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
    const loris = await Deno.connect({ hostname: "127.0.0.1", port: w.port });
    await loris.write(enc.encode("GET /health HTTP/1.1\r\nHost: x\r\n"));
    const body = await Deno.connect({ hostname: "127.0.0.1", port: w.port });
    await body.write(
      enc.encode(
        "POST /echo HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n" +
          "content-length: 100\r\n\r\n{",
      ),
    );
    const [a, b, c] = await Promise.all(
      [idle, loris, body].map((x) => msUntilClosed(x, limit)),
    );
    const s = (ms: number) =>
      Number.isNaN(ms)
        ? `not closed in ${limit / 1000} s`
        : `${(ms / 1000).toFixed(1)} s`;
    console.log(
      `closed by the worker: idle keep-alive ${s(a)}, slowloris ${s(b)}, ` +
        `slow body ${s(c)}`,
    );
    for (const x of [idle, loris, body]) x.close();
  } else if (scenario === "fds") {
    const n = Number(Deno.env.get("FLOOD_CONNS") ?? 1000);
    const { conns, failed } = await openConns(w.port, n);
    await delay(2000);
    const during = await answers(w.url);
    const state = await alive(w.child);
    for (const c of conns) c.close();
    await delay(1000);
    console.log(
      `ulimit -n ${ULIMIT}, ${n} idle connections (${failed} refused): ` +
        `while held: ${state}, health ${during}; after closing them: ` +
        `${await alive(w.child)}, health ${await answers(w.url)}`,
    );
  } else if (scenario === "streams") {
    const n = Number(Deno.env.get("FLOOD_CONNS") ?? 600);
    const body = JSON.stringify({
      auth_data: {
        cost: 1,
        endpoint: "flood",
        reqnum: 1,
        request_idx: 1,
        signature: "unsigned",
        url: w.url,
      },
      payload: { stream: true },
    });
    const outcomes = new Map<string, number>();
    const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    const clients = [...Array(n)].map(() => Deno.createHttpClient({}));
    let during = "";
    let state = "";
    await Promise.all([
      ...clients.map(async (client) => {
        try {
          const res = await fetch(`${w.url}/stream`, {
            method: "POST",
            body,
            client,
            signal: AbortSignal.timeout(30_000),
          });
          const text = await res.text();
          count(
            `${res.status}${
              res.ok ? ` ${text.split("data:").length - 1} chunks` : ""
            }`,
          );
        } catch (e) {
          count(`failed: ${e instanceof Error ? e.message : e}`);
        }
      }),
      delay(STREAM_MS * 5).then(async () => {
        during = await answers(w.url);
        state = await alive(w.child);
      }),
    ]);
    for (const c of clients) c.close();
    await delay(500);
    console.log(
      `ulimit -n ${ULIMIT}, ${n} streams on separate connections: ` +
        `${JSON.stringify(Object.fromEntries(outcomes))}; mid-way: ${state}, ` +
        `health ${during}; after: ${await alive(
          w.child,
        )}, health ${await answers(w.url)}`,
    );
  } else {
    console.log(`unknown scenario ${scenario}`);
  }
} finally {
  await w.stop();
  const err = (await w.stderr).trim();
  if (err) {
    console.log(`worker stderr: ${err.split("\n").slice(-3).join(" | ")}`);
  }
  await model.shutdown();
}
