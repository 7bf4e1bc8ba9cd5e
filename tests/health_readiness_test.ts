/**
 * Health-gated readiness end to end: a worker probes the scripted model
 * server and `/ready`, `/status` and the lifecycle follow what it answers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { WorkerConfig } from "../lib/config/schemas.ts";
import { startUpstream, type UpstreamHandle } from "./helpers/upstream.ts";
import { type Running, startWorker } from "./helpers/worker.ts";
import { waitFor } from "./helpers/http.ts";

const LOAD = "Application startup complete.";
const ERROR = "CUDA out of memory";

/** Probing every 50 ms, unhealthy after 2 failures of at most 200 ms. */
const HEALTHCHECK = {
  intervalSeconds: 0.05,
  timeoutSeconds: 0.2,
  failureThreshold: 2,
};
/** The longest it may take to notice a dead model server. */
const PROBE_WINDOW_MS = HEALTHCHECK.failureThreshold *
  (HEALTHCHECK.intervalSeconds + HEALTHCHECK.timeoutSeconds) * 1000;

function healthConfig(
  s: UpstreamHandle,
  more: Partial<WorkerConfig> = {},
): WorkerConfig {
  return {
    modelServerUrl: s.url,
    modelHealthUrl: "/health",
    healthcheck: HEALTHCHECK,
    handlers: [{ route: "/work" }],
    ...more,
  };
}

async function look(w: Running): Promise<{
  ready: number;
  state: string;
  errorMsg: string;
  statusState: string;
  statusError: string;
}> {
  const res = await fetch(`${w.url}/ready`);
  const body = await res.json();
  const status = await (await fetch(`${w.url}/status`)).json();
  return {
    ready: res.status,
    state: body.state,
    errorMsg: body.error_msg,
    statusState: status.state,
    statusError: status.error_msg,
  };
}

async function assertSeen(
  w: Running,
  expected: { ready: number; state: string; errorMsg: string },
): Promise<void> {
  assert.equal(w.lifecycle.state, expected.state);
  assert.deepEqual(await look(w), {
    ...expected,
    statusState: expected.state,
    statusError: expected.errorMsg,
  });
}

async function stop(w: Running | undefined, ...standIns: UpstreamHandle[]) {
  await w?.shutdown();
  for (const s of standIns) await s.close();
  if (w) await Deno.remove(w.dir, { recursive: true });
}

Deno.test("health readiness: loading while the model answers 503, ready at its first 200", async () => {
  const s = startUpstream({ healthStatus: 503 });
  let w: Running | undefined;
  try {
    w = await startWorker(healthConfig(s));
    const worker = w;
    await waitFor(() => s.healthProbes >= 3, 3000, "three probes");
    await assertSeen(worker, { ready: 503, state: "loading", errorMsg: "" });

    s.healthStatus = 200;
    await waitFor(() => worker.lifecycle.ready, 3000, "ready");
    await assertSeen(worker, { ready: 200, state: "ready", errorMsg: "" });
    assert.ok(worker.lifecycle.loadtime > 0);
  } finally {
    await stop(w, s);
  }
});

Deno.test("health readiness: a model server that never answers times out with what was awaited", async () => {
  const s = startUpstream({ hangHealth: true });
  let w: Running | undefined;
  try {
    const started = Date.now();
    w = await startWorker(healthConfig(s, {
      readinessTimeout: 0.5,
      healthcheck: { ...HEALTHCHECK, timeoutSeconds: 10 },
    }));
    const worker = w;
    await waitFor(() => worker.lifecycle.state === "error", 3000, "error");
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 450 && elapsed < 1500, `error after ${elapsed} ms`);
    await assertSeen(worker, {
      ready: 503,
      state: "error",
      errorMsg:
        `Model server not ready after 0.5 s (waiting for 200 from ${s.url}/health)`,
    });
    assert.ok(s.healthProbes >= 1);
  } finally {
    await stop(w, s);
  }
});

Deno.test("health readiness: a model server answering after the timeout is still used", async () => {
  const s = startUpstream({ healthStatus: 503 });
  let w: Running | undefined;
  try {
    w = await startWorker(healthConfig(s, { readinessTimeout: 0.3 }));
    const worker = w;
    await waitFor(() => worker.lifecycle.state === "error", 3000, "error");
    s.healthStatus = 200;
    await waitFor(() => worker.lifecycle.ready, 3000, "late ready");
    await assertSeen(worker, { ready: 200, state: "ready", errorMsg: "" });
  } finally {
    await stop(w, s);
  }
});

Deno.test("health readiness: a model server dying after ready is an error within the probe window, then recovers", async () => {
  let s = startUpstream();
  const port = s.port;
  let w: Running | undefined;
  try {
    w = await startWorker(healthConfig(s));
    const worker = w;
    await waitFor(() => worker.lifecycle.ready, 3000, "ready");
    const loadtime = worker.lifecycle.loadtime;

    await s.close();
    const died = Date.now();
    await waitFor(
      () => worker.lifecycle.state === "error",
      PROBE_WINDOW_MS + 1000,
      "error",
    );
    const noticed = Date.now() - died;
    assert.ok(
      noticed <= PROBE_WINDOW_MS,
      `noticed after ${noticed} ms, window ${PROBE_WINDOW_MS} ms`,
    );
    const seen = await look(worker);
    assert.equal(seen.ready, 503);
    assert.equal(seen.state, "error");
    assert.equal(seen.statusError, seen.errorMsg);
    assert.match(
      seen.errorMsg,
      new RegExp(
        `^Model server health check failed 2 times in a row at http://127\\.0\\.0\\.1:${port}/health: .+`,
      ),
    );
    assert.equal(worker.lifecycle.fatal, false);

    // The model server comes back on the same port.
    s = startUpstream({ port });
    const back = s;
    await waitFor(() => worker.lifecycle.ready, 3000, "recovery");
    assert.ok(back.healthProbes >= 1);
    await assertSeen(worker, { ready: 200, state: "ready", errorMsg: "" });
    // Python's loadtime is the time to the model's load: a recovery of the
    // health check is not a new load, so it keeps it.
    assert.equal(worker.lifecycle.loadtime, loadtime, "loadtime of the load");
  } finally {
    await stop(w, s);
  }
});

Deno.test("health readiness: with both, a fatal log line is not undone by the health check", async () => {
  const dir = await Deno.makeTempDir({ prefix: "health_readiness_test_" });
  const log = join(dir, "model.log");
  await Deno.writeTextFile(log, "");
  let s = startUpstream({ healthStatus: 503 });
  const port = s.port;
  let w: Running | undefined;
  try {
    w = await startWorker(healthConfig(s, {
      readiness: "both",
      modelLogFile: log,
      logActions: { onLoad: [LOAD], onError: [ERROR] },
    }));
    const worker = w;
    // The load line alone is not enough: the health check must pass too.
    await Deno.writeTextFile(log, `${LOAD}\n`, { append: true });
    const probes = s.healthProbes;
    await waitFor(() => s.healthProbes >= probes + 3, 3000, "more probes");
    await assertSeen(worker, { ready: 503, state: "loading", errorMsg: "" });
    s.healthStatus = 200;
    await waitFor(() => worker.lifecycle.ready, 3000, "ready");

    // The model server dies: a (recoverable) health error ...
    await s.close();
    await waitFor(() => worker.lifecycle.state === "error", 3000, "error");
    assert.equal(worker.lifecycle.fatal, false);
    // ... then its log says why: that is fatal, and the message.
    const line = `torch.OutOfMemoryError: ${ERROR}. Tried to allocate 1 GiB`;
    await Deno.writeTextFile(log, `${line}\n`, { append: true });
    await waitFor(() => worker.lifecycle.fatal, 3000, "fatal");
    await assertSeen(worker, { ready: 503, state: "error", errorMsg: line });

    // A healthy model server again does not undo a fatal error.
    s = startUpstream({ port });
    const back = s;
    await waitFor(() => back.healthProbes >= 3, 3000, "probes after restart");
    await assertSeen(worker, { ready: 503, state: "error", errorMsg: line });
  } finally {
    await stop(w, s);
    await Deno.remove(dir, { recursive: true });
  }
});

for (const readiness of ["logs", "both"] as const) {
  Deno.test(`health readiness (${readiness}): a restarted model server's load line waits for its health check`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "health_readiness_test_" });
    const log = join(dir, "model.log");
    await Deno.writeTextFile(log, `${LOAD}\n`);
    let s = startUpstream();
    const port = s.port;
    let w: Running | undefined;
    try {
      w = await startWorker(healthConfig(s, {
        readiness,
        modelLogFile: log,
        logActions: { onLoad: [LOAD], onError: [ERROR] },
      }));
      const worker = w;
      await waitFor(() => worker.lifecycle.ready, 3000, "ready");

      // The model server dies and is restarted; it prints its load line
      // before its health check passes.
      await s.close();
      await waitFor(() => worker.lifecycle.state === "error", 3000, "error");
      const error = worker.lifecycle.errorMsg;
      const states: string[] = [];
      worker.lifecycle.subscribe((t) => states.push(t.to));
      s = startUpstream({ port, healthStatus: 503 });
      const back = s;
      await Deno.writeTextFile(log, `restart\n${LOAD}\n`, { append: true });
      await waitFor(() => back.healthProbes >= 4, 3000, "probes");
      await assertSeen(worker, { ready: 503, state: "error", errorMsg: error });

      back.healthStatus = 200;
      await waitFor(() => worker.lifecycle.ready, 3000, "ready again");
      const probes = back.healthProbes;
      await waitFor(() => back.healthProbes >= probes + 3, 3000, "probes");
      await assertSeen(worker, { ready: 200, state: "ready", errorMsg: "" });
      assert.equal(states.filter((t) => t === "ready").length, 1, `${states}`);
    } finally {
      await stop(w, s);
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("health readiness (both): a load line after the timeout does not skip the health check", async () => {
  const dir = await Deno.makeTempDir({ prefix: "health_readiness_test_" });
  const log = join(dir, "model.log");
  await Deno.writeTextFile(log, "");
  const s = startUpstream({ healthStatus: 503 });
  let w: Running | undefined;
  try {
    w = await startWorker(healthConfig(s, {
      readiness: "both",
      readinessTimeout: 0.3,
      modelLogFile: log,
      logActions: { onLoad: [LOAD], onError: [ERROR] },
    }));
    const worker = w;
    const states: string[] = [];
    worker.lifecycle.subscribe((t) => states.push(t.to));
    await waitFor(() => worker.lifecycle.state === "error", 3000, "timeout");
    await Deno.writeTextFile(log, `${LOAD}\n`, { append: true });
    const probes = s.healthProbes;
    await waitFor(() => s.healthProbes >= probes + 5, 3000, "probes");
    assert.deepEqual(states, ["error"], "never ready while answering 503");
    assert.equal(worker.lifecycle.state, "error");
  } finally {
    await stop(w, s);
    await Deno.remove(dir, { recursive: true });
  }
});
