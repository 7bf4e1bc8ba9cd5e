/**
 * A handler's `failureBody`: a JSON answer whose field reports a failure
 * (ComfyUI wrappers' `200 {"status": "failed"}`) reaches the client as the
 * model sent it, but is an error in the ledger; other answers are not
 * judged. Bad settings are refused naming the field.
 */
import assert from "node:assert/strict";
import { ConfigError, parseWorkerConfig } from "../lib/config/file.ts";
import { startUpstream } from "./helpers/upstream.ts";
import { envelope, startWorker } from "./helpers/worker.ts";
import { post, waitFor } from "./helpers/http.ts";

/** `/job` answers `{"status": <payload.status>}`, chunked when asked, or plain text. */
function jobServer() {
  return startUpstream({
    script: ({ path, body }) => {
      if (path !== "/job") return undefined;
      const p = body as { status: string; chunked?: boolean; text?: string };
      if (p.text !== undefined) return new Response(p.text, { status: 200 });
      const json = JSON.stringify({ id: "j1", status: p.status, output: [] });
      if (!p.chunked) {
        return new Response(json, {
          headers: { "content-type": "application/json" },
        });
      }
      const bytes = new TextEncoder().encode(json);
      return new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(bytes.slice(0, 10));
            c.enqueue(bytes.slice(10));
            c.close();
          },
        }),
        { headers: { "content-type": "application/json" } },
      );
    },
  });
}

Deno.test("failureBody: a 200 {status: failed} is relayed unchanged and recorded as an error; others are served", async () => {
  await using up = jobServer();
  const w = await startWorker({
    modelServerUrl: up.url,
    handlers: [{
      route: "/job",
      allowParallelRequests: true,
      failureBody: { path: "status", values: ["failed"] },
    }],
  });
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const cases = [
      { payload: { status: "failed" }, outcome: "error" },
      { payload: { status: "failed", chunked: true }, outcome: "error" },
      { payload: { status: "completed" }, outcome: "success" },
      { payload: { text: '"status": "failed"' }, outcome: "success" },
    ];
    for (const [i, c] of cases.entries()) {
      const res = await post(w.url, "/job", envelope(c.payload));
      assert.equal(res.status, 200);
      const text = await res.text();
      if (c.payload.text) assert.equal(text, c.payload.text);
      else assert.equal(JSON.parse(text).status, c.payload.status);
      await waitFor(() => w.ledger.pendingFinished().length === i + 1);
      const rec = w.ledger.pendingFinished()[i];
      assert.equal(rec.status, c.outcome, JSON.stringify(c.payload));
      assert.equal(rec.httpStatus, 200);
      if (c.outcome === "error") {
        assert.equal(
          rec.detail,
          'model server reported a failure: status "failed"',
        );
      }
    }
  } finally {
    await w.shutdown();
    await Deno.remove(w.dir, { recursive: true });
  }
});

Deno.test("failureBody and loadProbe: bad settings are refused naming the field", () => {
  const base = { modelServerUrl: "http://127.0.0.1:9" };
  const problems = (cfg: unknown): readonly string[] => {
    try {
      parseWorkerConfig(cfg);
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return e.problems;
    }
    throw new Error("accepted");
  };
  const empty = problems({
    ...base,
    handlers: [{ route: "/job", failureBody: { path: "status", values: [] } }],
  });
  assert.equal(empty.length, 1);
  assert.match(empty[0], /^handlers\[0\]\.failureBody\.values: /);
  const nested = problems({
    ...base,
    handlers: [{
      route: "/job",
      failureBody: { path: "status", values: [{ no: 1 }] },
    }],
  });
  assert.match(nested[0], /^handlers\[0\]\.failureBody\.values\[0\]: /);
  const probe = problems({
    ...base,
    handlers: [{ route: "/job" }],
    loadProbe: { urls: [], intervalSeconds: 0 },
  });
  assert.deepEqual(probe.map((p) => p.split(":")[0]).sort(), [
    "loadProbe.intervalSeconds",
    "loadProbe.urls",
  ]);
});

Deno.test("failureBody: a stream that is not JSON stays a stream (its first event arrives before the model ends it)", async () => {
  const release = Promise.withResolvers<void>();
  await using up = startUpstream({
    script: ({ path }) => {
      if (path !== "/job") return undefined;
      const enc = new TextEncoder();
      return new Response(
        new ReadableStream({
          async start(c) {
            c.enqueue(enc.encode('data: {"status":"running"}\n\n'));
            await release.promise;
            c.enqueue(enc.encode("data: [DONE]\n\n"));
            c.close();
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      );
    },
  });
  const w = await startWorker({
    modelServerUrl: up.url,
    handlers: [{
      route: "/job",
      allowParallelRequests: true,
      failureBody: { path: "status", values: ["failed"] },
    }],
  });
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const res = await post(w.url, "/job", envelope({}));
    const reader = res.body!.getReader();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const first = await Promise.race([
      reader.read(),
      new Promise<"held">((r) => timer = setTimeout(() => r("held"), 3000)),
    ]);
    clearTimeout(timer);
    release.resolve();
    assert.notEqual(first, "held", "the first event was held back");
    assert.match(
      new TextDecoder().decode(
        (first as ReadableStreamReadResult<Uint8Array>).value,
      ),
      /running/,
    );
    while (!(await reader.read()).done) { /* the rest */ }
    await waitFor(() => w.ledger.inFlightCount === 0, 3000, "ended");
  } finally {
    release.resolve();
    await w.stop();
  }
});
