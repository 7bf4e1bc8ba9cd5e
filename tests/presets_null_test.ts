/**
 * The `null` preset through a real worker: `/reserve` held until the
 * control port's `/release`, a duration or the client leaving; a second
 * reservation refused at once; `max_perf` pinned to 100; bad settings
 * named.
 */
import assert from "node:assert/strict";
import { ConfigError } from "../lib/config/file.ts";
import { findPreset } from "../workers/mod.ts";
import { post, waitFor } from "./helpers/http.ts";
import { envelope, type Running, startWorker } from "./helpers/worker.ts";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function withNullWorker(
  fn: (
    url: string,
    control: string,
    w: Running,
  ) => Promise<void>,
  extra: Record<string, string> = {},
): Promise<void> {
  const port = freePort();
  const w = await startWorker((env) => findPreset("null")!.config(env), {
    EDGEWORKER_DRAIN_SECONDS: "1",
    NULL_CONTROL_PORT: String(port),
    ...extra,
  });
  try {
    await waitFor(() => w.lifecycle.ready, 5000, "ready");
    await fn(w.url, `http://127.0.0.1:${port}`, w);
  } finally {
    await w.stop();
  }
}

Deno.test("null preset: /reserve holds the worker until /release, and a second reservation gets 429 meanwhile", async () => {
  await withNullWorker(async (url, control, w) => {
    const status = await (await fetch(`${url}/status`)).json();
    assert.equal(status.max_perf, 100);
    const health = await fetch(`${control}/health`);
    assert.equal(await health.text(), "ok");

    const held = post(url, "/reserve", envelope({ duration: 30 }));
    await waitFor(() => w.ledger.inFlightCount === 1, 3000, "held");
    const second = await post(
      url,
      "/reserve",
      envelope({}, { request_idx: 2 }),
    );
    assert.equal(second.status, 429);
    await second.body?.cancel();

    const release = await fetch(`${control}/release`, { method: "POST" });
    assert.deepEqual(await release.json(), { released: true });
    const res = await held;
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      result: { released: "explicit", duration_cap: 30 },
    });
    const again = await fetch(`${control}/release`, { method: "POST" });
    assert.deepEqual(await again.json(), {
      released: false,
      reason: "no active reservation",
    });
    await waitFor(() => w.ledger.inFlightCount === 0);
    const records = w.ledger.pendingFinished().map((r) => [
      r.status,
      r.httpStatus,
      r.workload,
    ]);
    assert.deepEqual(records, [
      ["rejected", 429, 100],
      ["success", 200, 100],
    ]);
  });
});

Deno.test("null preset: a reservation ends after its duration (capped by MAX_RESERVATION_SECONDS), or when the client leaves", async () => {
  await withNullWorker(async (url, control, w) => {
    const capped = await post(url, "/reserve", envelope({ duration: 99 }));
    assert.deepEqual(await capped.json(), {
      result: { released: "duration_elapsed", duration: 0.3 },
    });
    const short = await post(url, "/reserve", envelope({ duration: "0.1" }));
    assert.deepEqual(await short.json(), {
      result: { released: "duration_elapsed", duration: 0.1 },
    });

    const client = new AbortController();
    const left = post(url, "/reserve", envelope({ duration: 60 }), {
      signal: client.signal,
    }).catch(() => undefined);
    await waitFor(() => w.ledger.inFlightCount === 1);
    client.abort();
    await left;
    await waitFor(() => w.ledger.inFlightCount === 0, 3000, "released");
    const none = await fetch(`${control}/release`, { method: "POST" });
    assert.equal((await none.json()).released, false);
    assert.deepEqual(
      w.ledger.pendingFinished().map((r) => r.httpStatus),
      [200, 200, 499],
    );
  }, { MAX_RESERVATION_SECONDS: "0.3" });
});

Deno.test("null preset: bad settings are errors naming the variable", () => {
  const preset = findPreset("null")!;
  const cases: [Record<string, string>, RegExp][] = [
    [{ NULL_CONTROL_PORT: "abc" }, /NULL_CONTROL_PORT: expected a port/],
    [{ NULL_CONTROL_PORT: "70000" }, /NULL_CONTROL_PORT/],
    [{ MAX_RESERVATION_SECONDS: "soon" }, /MAX_RESERVATION_SECONDS/],
    [
      { BACKEND_HEALTH_URL: "/health" },
      /BACKEND_HEALTH_URL: expected an absolute/,
    ],
  ];
  for (const [env, message] of cases) {
    assert.throws(() => preset.config(env), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, message);
      return true;
    });
  }
  const pointed = preset.config({
    BACKEND_HEALTH_URL: "http://127.0.0.1:9090/healthz",
  });
  assert.equal(pointed.modelServerUrl, "http://127.0.0.1:9090");
  assert.equal(pointed.modelHealthUrl, "http://127.0.0.1:9090/healthz");
});
