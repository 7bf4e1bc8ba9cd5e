/**
 * Log-driven readiness end to end: a worker tails a real log file and what
 * a user sees (`/ready`, `/status`, the lifecycle, the logs) follows it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { LogRecord } from "@logtape/logtape";
import type { WorkerConfig } from "../lib/config/schemas.ts";
import { parseWorkerConfig } from "../lib/config/file.ts";
import { readinessTimeoutOf } from "../lib/model/readiness_config.ts";
import { captureLogs } from "./helpers/logs.ts";
import { type Running, startWorker } from "./helpers/worker.ts";
import { waitFor } from "./helpers/http.ts";

const LOAD = "Application startup complete.";
const ERROR = "CUDA out of memory";
const INFO = "Loading weights";

interface Ctx {
  w: Running;
  /** The model log. */
  path: string;
  /** A directory for rotated copies; removed afterwards. */
  dir: string;
  records: LogRecord[];
}

/** Starts a worker tailing `<tmp>/model.log` (created with `prefill`). */
async function withLogWorker(
  options: {
    prefill?: string;
    env?: Record<string, string>;
    config?: Partial<WorkerConfig>;
  },
  fn: (ctx: Ctx) => Promise<void>,
): Promise<void> {
  await using logs = await captureLogs();
  const dir = await Deno.makeTempDir({ prefix: "readiness_test_" });
  const path = join(dir, "model.log");
  let w: Running | undefined;
  try {
    if (options.prefill !== undefined) {
      await Deno.writeTextFile(path, options.prefill);
    }
    w = await startWorker({
      // Never called: no handler has a benchmark.
      modelServerUrl: "http://127.0.0.1:9",
      modelLogFile: path,
      logActions: { onLoad: [LOAD], onError: [ERROR], onInfo: [INFO] },
      handlers: [{ route: "/v1/completions" }],
      ...options.config,
    }, options.env);
    await fn({ w, path, dir, records: logs.records });
  } finally {
    await w?.shutdown();
    if (w) await Deno.remove(w.dir, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  }
}

function append(path: string, text: string): Promise<void> {
  return Deno.writeTextFile(path, text, { append: true });
}

interface Seen {
  ready: number;
  state: string;
  errorMsg: string;
  status: { state: string; error_msg: string; loadtime: number };
}

/** What a user sees: `/ready` (status and body) and `/status`. */
async function look(w: Running): Promise<Seen> {
  const res = await fetch(`${w.url}/ready`);
  const body = await res.json() as {
    state: string;
    error_msg: string;
    loading_seconds: number | null;
  };
  const status = await (await fetch(`${w.url}/status`)).json();
  // The time spent loading shows until the first ready, in both answers.
  const loading = !w.lifecycle.loadtime && w.lifecycle.state !== "draining";
  for (const s of [body.loading_seconds, status.loading_seconds]) {
    if (loading) assert.ok(typeof s === "number" && s >= 0, `loading ${s}`);
    else assert.equal(s, null);
  }
  return {
    ready: res.status,
    state: body.state,
    errorMsg: body.error_msg,
    status,
  };
}

async function assertSeen(
  w: Running,
  expected: { ready: number; state: string; errorMsg: string },
): Promise<void> {
  const seen = await look(w);
  assert.equal(w.lifecycle.state, expected.state);
  assert.deepEqual(
    {
      ready: seen.ready,
      state: seen.state,
      errorMsg: seen.errorMsg,
      statusState: seen.status.state,
      statusError: seen.status.error_msg,
    },
    {
      ...expected,
      statusState: expected.state,
      statusError: expected.errorMsg,
    },
  );
}

function message(r: LogRecord): string {
  return r.message.map(String).join("");
}

/** Waits until the worker logged the info line `line` (read that far). */
async function infoLogged(records: LogRecord[], line: string): Promise<void> {
  await waitFor(
    () => records.some((r) => message(r) === `Model: ${line}`),
    3000,
    `info line "${line}" in the worker's log`,
  );
}

function transitions(records: LogRecord[]): string[] {
  return records.map(message).filter((m) => m.startsWith("State "));
}

Deno.test("log readiness: a load line written in two pieces makes the worker ready once complete", async () => {
  const before = performance.now() / 1000;
  await withLogWorker({ prefill: "" }, async ({ w, path, records }) => {
    await assertSeen(w, { ready: 503, state: "loading", errorMsg: "" });
    // The info line proves the tail has read past the half-written line.
    await append(
      path,
      `INFO ${INFO}: 40%\nINFO 08-01 12:00:00 ${LOAD.slice(0, 12)}`,
    );
    await infoLogged(records, `INFO ${INFO}: 40%`);
    await assertSeen(w, { ready: 503, state: "loading", errorMsg: "" });

    await append(path, `${LOAD.slice(12)}\n`);
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const after = performance.now() / 1000;
    await assertSeen(w, { ready: 200, state: "ready", errorMsg: "" });

    // loadtime: process start to ready, as /status shows it.
    const { status } = await look(w);
    assert.equal(status.loadtime, w.lifecycle.loadtime);
    assert.ok(
      status.loadtime >= before - 0.02 && status.loadtime <= after + 0.02,
      `loadtime ${status.loadtime} not within [${before}, ${after}]`,
    );

    // Each transition is logged once, with its cause and timing.
    const states = transitions(records);
    assert.equal(states.length, 3, states.join("\n"));
    assert.match(
      states[0],
      new RegExp(
        `^State starting -> loading after \\d+\\.\\d\\ds: waiting for "${LOAD}" in ${path}$`,
      ),
    );
    assert.match(
      states[1],
      /^State loading -> benchmarking after \d+\.\d\ds: model loaded$/,
    );
    assert.match(
      states[2],
      /^State benchmarking -> ready after \d+\.\d\ds: max_perf 0\.00$/,
    );
    assert.ok(
      records.some((r) =>
        message(r) === `Model load line: INFO 08-01 12:00:00 ${LOAD}`
      ),
      "the load line is logged whole",
    );
  });
});

Deno.test("log readiness: from=end ignores a stale load line of a previous boot", async () => {
  await withLogWorker({
    prefill: `old boot\n${LOAD}\n`,
    env: { EDGEWORKER_LOG_FROM: "end" },
  }, async ({ w, path, records }) => {
    await append(path, `${INFO} 10%\n`);
    await infoLogged(records, `${INFO} 10%`);
    await assertSeen(w, { ready: 503, state: "loading", errorMsg: "" });

    await append(path, `new boot: ${LOAD}\n`);
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    await assertSeen(w, { ready: 200, state: "ready", errorMsg: "" });
  });
});

Deno.test("log readiness: from=start (the default, as in Python) fires on a load line already there", async () => {
  await withLogWorker(
    { prefill: `old boot\n${LOAD}\n` },
    async ({ w }) => {
      await waitFor(() => w.lifecycle.ready, 3000, "ready");
      await assertSeen(w, { ready: 200, state: "ready", errorMsg: "" });
    },
  );
});

Deno.test("log readiness: an error line is fatal, with the whole line as error_msg", async () => {
  const line = `torch.OutOfMemoryError: ${ERROR}. Tried to allocate 2.00 GiB`;
  await withLogWorker({ prefill: "" }, async ({ w, path, records }) => {
    await append(path, `${LOAD}\n`);
    await waitFor(() => w.lifecycle.ready, 3000, "ready");

    await append(path, `${line}\n`);
    await waitFor(() => w.lifecycle.state === "error", 3000, "error");
    await assertSeen(w, { ready: 503, state: "error", errorMsg: line });
    assert.equal(w.lifecycle.fatal, true);

    // Nothing brings it back: not a new load line, not time.
    await append(path, `${LOAD}\n${INFO} after the error\n`);
    await infoLogged(records, `${INFO} after the error`);
    await assertSeen(w, { ready: 503, state: "error", errorMsg: line });
    const states = transitions(records);
    assert.equal(states.length, 4, states.join("\n"));
    assert.match(
      states[3],
      new RegExp(`^State ready -> error after \\d+\\.\\d\\ds: ${line}$`),
    );
  });
});

Deno.test("log readiness: an error line while loading is fatal; a later load line is ignored", async () => {
  const line = `RuntimeError: ${ERROR} on device 0`;
  await withLogWorker(
    { prefill: `${line}\n` },
    async ({ w, path, records }) => {
      await waitFor(() => w.lifecycle.state === "error", 3000, "error");
      await assertSeen(w, { ready: 503, state: "error", errorMsg: line });
      await append(path, `${LOAD}\n${INFO} done\n`);
      await infoLogged(records, `${INFO} done`);
      await assertSeen(w, { ready: 503, state: "error", errorMsg: line });
    },
  );
});

Deno.test("log readiness: an info line is logged whole and changes nothing", async () => {
  await withLogWorker({ prefill: "" }, async ({ w, path, records }) => {
    const first = `[rank0] ${INFO}: 3/7 shards`;
    await append(path, `${first}\n`);
    await infoLogged(records, first);
    await assertSeen(w, { ready: 503, state: "loading", errorMsg: "" });

    await append(path, `${LOAD}\n`);
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const second = `[rank0] ${INFO} for the LoRA adapter`;
    await append(path, `${second}\n`);
    await infoLogged(records, second);
    await assertSeen(w, { ready: 200, state: "ready", errorMsg: "" });
    const info = records.find((r) => message(r) === `Model: ${first}`)!;
    assert.equal(info.level, "info");
    assert.equal(transitions(records).length, 3);
  });
});

Deno.test("log readiness: rotation by rename and recreate before the load line", async () => {
  await withLogWorker({ prefill: "" }, async ({ w, path, dir, records }) => {
    await append(path, `boot 1\n${INFO} (old file)\n`);
    await infoLogged(records, `${INFO} (old file)`);
    await Deno.rename(path, join(dir, "model.log.1"));
    await Deno.writeTextFile(path, "");
    await append(path, `boot 2\n${INFO} (new file)\n`);
    await infoLogged(records, `${INFO} (new file)`);
    await assertSeen(w, { ready: 503, state: "loading", errorMsg: "" });

    await append(path, `${LOAD}\n`);
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    await assertSeen(w, { ready: 200, state: "ready", errorMsg: "" });
  });
});

Deno.test("log readiness: copytruncate before the load line", async () => {
  const noise = "x".repeat(200) + "\n";
  await withLogWorker({ prefill: "" }, async ({ w, path, dir, records }) => {
    await append(path, noise.repeat(20) + `${INFO} (before truncation)\n`);
    await infoLogged(records, `${INFO} (before truncation)`);
    await Deno.copyFile(path, join(dir, "model.log.1"));
    await Deno.truncate(path, 0);
    // Shorter than what the tail had read: it must start over at byte 0.
    await append(path, `${LOAD}\n`);
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    await assertSeen(w, { ready: 200, state: "ready", errorMsg: "" });
  });
});

Deno.test("log readiness: a log file created late is read from its start, even with from=end", async () => {
  await withLogWorker(
    { env: { EDGEWORKER_LOG_FROM: "end" } },
    async ({ w, path }) => {
      // A few polls without the file.
      await new Promise((r) => setTimeout(r, 200));
      await assertSeen(w, { ready: 503, state: "loading", errorMsg: "" });
      await Deno.writeTextFile(path, `starting\n${LOAD}\n`);
      await waitFor(() => w.lifecycle.ready, 3000, "ready");
      await assertSeen(w, { ready: 200, state: "ready", errorMsg: "" });
    },
  );
});

Deno.test("log readiness: the timeout names what it waited for; a late load line still brings it up", async () => {
  await withLogWorker(
    { prefill: "", config: { readinessTimeout: 0.3 } },
    async ({ w, path }) => {
      await waitFor(() => w.lifecycle.state === "error", 3000, "error");
      const expected =
        `Model server not ready after 0.3 s (waiting for "${LOAD}" in ${path})`;
      await assertSeen(w, { ready: 503, state: "error", errorMsg: expected });
      assert.equal(w.lifecycle.fatal, false);

      await append(path, `${LOAD}\n`);
      await waitFor(() => w.lifecycle.ready, 3000, "ready");
      await assertSeen(w, { ready: 200, state: "ready", errorMsg: "" });
    },
  );
});

Deno.test("log modes have no overall readiness timeout unless one is set; healthcheck mode waits 1800 s", () => {
  const base = {
    modelServerUrl: "http://127.0.0.1:9",
    handlers: [{ route: "/x" }],
  };
  const logs = parseWorkerConfig({ ...base, modelLogFile: "/tmp/m.log" });
  assert.equal(readinessTimeoutOf(logs), null);
  const both = parseWorkerConfig({
    ...base,
    modelLogFile: "/tmp/m.log",
    modelHealthUrl: "/health",
  });
  assert.equal(readinessTimeoutOf(both), null);
  const health = parseWorkerConfig({ ...base, modelHealthUrl: "/health" });
  assert.equal(readinessTimeoutOf(health), 1800);
  const set = parseWorkerConfig({
    ...base,
    modelLogFile: "/tmp/m.log",
    readinessTimeout: 3,
  });
  assert.equal(readinessTimeoutOf(set), 3);
});

/** A server answering `status()` on every path; counts its requests. */
function statusServer(status: () => number) {
  let hits = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => {
      hits++;
      return new Response(null, { status: status() });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/probe`,
    hits: () => hits,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("load probe: without a load line, loaded once every probe URL answers 2xx in one round", async () => {
  let comfy = 503;
  await using a = statusServer(() => comfy);
  await using b = statusServer(() => 200);
  await withLogWorker({
    config: {
      loadProbe: { urls: [a.url, b.url], intervalSeconds: 0.05 },
    },
  }, async ({ w, records }) => {
    await waitFor(() => a.hits() >= 3, 3000, "probe rounds");
    await assertSeen(w, {
      ready: 503,
      state: "loading",
      errorMsg: "",
    });
    assert.ok(
      records.some((r) => /Load probe waiting for .*HTTP 503/.test(message(r))),
    );
    comfy = 200;
    await waitFor(() => w.lifecycle.state === "ready", 3000, "ready");
    assert.ok(
      records.some((r) => /^Model loaded: .* answered/.test(message(r))),
    );
    const hits = a.hits();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(a.hits(), hits, "no probes once loaded");
  });
});

Deno.test("load probe: a load line still makes the worker ready, and ends the probe", async () => {
  await using a = statusServer(() => 503);
  await withLogWorker({
    config: { loadProbe: { urls: [a.url], intervalSeconds: 0.05 } },
  }, async ({ w, path }) => {
    await waitFor(() => a.hits() >= 2, 3000, "probe rounds");
    await append(path, `${LOAD}\n`);
    await waitFor(() => w.lifecycle.state === "ready", 3000, "ready");
    const hits = a.hits();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(a.hits(), hits, "no probes once loaded");
  });
});
