import assert from "node:assert/strict";
import { text2ImageWorkflow } from "../dev/_comfy_api.ts";
import {
  startComfyUiServer,
  WRAPPER_VERSIONS,
  type WrapperVersion,
} from "../dev/comfyui_server.ts";
import { statusOfResult, traitsOf } from "../dev/_comfy_versions.ts";
import { tempLog, waitForLog, waitUntilRefused } from "./helpers/dev.ts";
import { post, waitFor } from "./helpers/http.ts";

/** Two 512×512 images saved as `cat_NNNNN_.png` by node 9. */
const WORKFLOW = text2ImageWorkflow({ batch_size: 2 }, "cat");

/** The wrapper's default job: its built-in text-to-image graph. */
const TEXT2IMAGE = { input: { modifier: "Text2Image" } };

/** A graph ComfyUI refuses: no output node. */
const NO_OUTPUT_GRAPH = {
  input: { workflow_json: { "1": { class_type: "VAEDecode", inputs: {} } } },
};

Deno.test("comfyui stand-in answers /generate/sync with the wrapper's Result envelope", async () => {
  await using comfy = await startComfyUiServer({ secondsPerImage: 0.05 });
  const t0 = performance.now();
  const body = { input: { request_id: "req-1", workflow_json: WORKFLOW } };
  const res = await post(comfy.url, "/generate/sync", body);
  assert.equal(res.status, 200);
  const result = await res.json();
  assert.ok(performance.now() - t0 >= 95, "2 images at 50 ms each");
  assert.deepEqual(Object.keys(result), [
    "id",
    "message",
    "status",
    "comfyui_response",
    "output",
    "timings",
  ]);
  assert.equal(result.id, "req-1");
  assert.equal(result.status, "completed");
  // Slim by default since 2026-05-06.
  assert.deepEqual(result.comfyui_response, {});
  assert.equal(result.output.length, 2);
  assert.deepEqual(Object.keys(result.output[0]).sort(), [
    "filename",
    "local_path",
    "node_id",
    "output_type",
    "subfolder",
    "type",
  ]);
  assert.match(result.output[0].filename, /^cat_\d{5}_\.png$/);
  assert.equal(result.output[0].node_id, "9");
  assert.equal(result.output[0].output_type, "images");
  assert.equal(
    result.output[0].local_path,
    `/opt/ComfyUI/output/req-1/${result.output[0].filename}`,
  );
  for (
    const k of [
      "queued_at_ms",
      "generation_ms",
      "completed_at_ms",
      "total_ms",
    ]
  ) {
    assert.ok(Number.isInteger(result.timings[k]), k);
  }
  assert.deepEqual(comfy.lastBody, body);
  const mod = await post(comfy.url, "/generate/sync", {
    input: { modifier: "Text2Image", modifications: { prompt: "a cat" } },
  });
  const modResult = await mod.json();
  assert.equal(modResult.status, "completed");
  assert.match(modResult.id, /^[0-9a-f-]{36}$/);
  assert.equal(modResult.output.length, 1);
  assert.equal(comfy.requests, 2);
});

Deno.test("comfyui stand-in runs jobs one at a time, in arrival order", async () => {
  await using comfy = await startComfyUiServer({ secondsPerImage: 0.06 });
  const order: string[] = [];
  const send = async (id: string): Promise<void> => {
    const r = await post(comfy.url, "/generate/sync", {
      input: { request_id: id, modifier: "Text2Image" },
    });
    order.push((await r.json()).id);
  };
  const t0 = performance.now();
  const sent: Promise<void>[] = [];
  for (const id of ["a", "b", "c"]) {
    sent.push(send(id));
    await waitFor(() => comfy.requests === sent.length, 1000);
  }
  const all = Promise.all(sent);
  await waitFor(async () => {
    const q = await (await fetch(`${comfy.url}/health`)).json();
    return q.queues.generation === 3;
  }, 1000);
  await all;
  assert.deepEqual(order, ["a", "b", "c"]);
  assert.ok(performance.now() - t0 >= 170, "three jobs ran in sequence");
});

Deno.test("comfyui stand-in rejects invalid payloads like the wrapper", async () => {
  await using comfy = await startComfyUiServer({ secondsPerImage: 0 });
  const neither = await post(comfy.url, "/generate/sync", { input: {} });
  assert.equal(neither.status, 422);
  const d = (await neither.json()).detail[0];
  assert.equal(d.type, "value_error");
  assert.deepEqual(d.loc, ["body", "input"]);
  assert.match(d.msg, /Must provide either workflow_json OR modifier/);
  const missing = await post(comfy.url, "/generate/sync", { prompt: {} });
  assert.equal(missing.status, 422);
  assert.equal((await missing.json()).detail[0].type, "missing");
  const notJson = await post(comfy.url, "/generate/sync", "{nope");
  assert.equal(notJson.status, 422);
  assert.equal((await notJson.json()).detail[0].type, "json_invalid");
  // ComfyUI itself refuses a graph without outputs: the current wrapper
  // answers 500 "failed" with ComfyUI's node errors.
  const noOut = await post(comfy.url, "/generate/sync", NO_OUTPUT_GRAPH);
  assert.equal(noOut.status, 500);
  const failed = await noOut.json();
  assert.equal(failed.status, "failed");
  assert.equal(failed.message, "Generation failed: ComfyUI node errors: {}");
  assert.deepEqual(failed.output, []);
});

Deno.test("comfyui stand-in, wrapper 2025-12-05: ComfyUI's refusal is HTTP 200, failed, with ComfyUI's error", async () => {
  await using comfy = await startComfyUiServer({
    secondsPerImage: 0,
    wrapper: "2025-12-05",
  });
  const noOut = await post(comfy.url, "/generate/sync", NO_OUTPUT_GRAPH);
  assert.equal(noOut.status, 200);
  const failed = await noOut.json();
  assert.equal(failed.status, "failed");
  assert.match(
    failed.message,
    /^Generation failed: Network error posting to ComfyUI: 400, .*prompt_no_outputs/,
  );
  const noClass = await post(comfy.url, "/generate/sync", {
    input: { workflow_json: { "1": { inputs: {} } } },
  });
  assert.equal(noClass.status, 200);
  assert.match(
    (await noClass.json()).message,
    /missing the class_type property/,
  );
});

Deno.test("comfyui stand-in logs BACKENDS_READY once up, BACKEND_UNRECOVERABLE on crash", async () => {
  await using logFile = await tempLog();
  await using comfy = await startComfyUiServer({
    logFile: logFile.path,
    startupDelayMs: 150,
    secondsPerImage: 1,
  });
  const early = await fetch(`${comfy.url}/health`);
  assert.equal(early.status, 503);
  assert.equal((await early.json()).status, "unhealthy");
  assert.doesNotMatch(await Deno.readTextFile(logFile.path), /BACKENDS_READY/);
  await waitForLog(logFile.path, "BACKENDS_READY:");
  const ok = await fetch(`${comfy.url}/health`);
  assert.equal((await ok.json()).status, "healthy");
  const job = post(comfy.url, "/generate/sync", TEXT2IMAGE);
  await waitFor(() => comfy.requests === 1, 1000);
  await comfy.crash();
  const failed = await (await job).json();
  assert.equal(failed.status, "failed");
  assert.match(await Deno.readTextFile(logFile.path), /BACKEND_UNRECOVERABLE/);
  await assert.rejects(fetch(`${comfy.url}/health`), TypeError);
});

Deno.test("comfyui stand-in counts clients that leave; failure injection", async () => {
  {
    await using logFile = await tempLog();
    await using comfy = await startComfyUiServer({
      logFile: logFile.path,
      secondsPerImage: 5,
      wrapper: "2026-05-06",
    });
    const ctrl = new AbortController();
    const running = post(comfy.url, "/generate/sync", TEXT2IMAGE, {
      signal: ctrl.signal,
    });
    const queued = post(comfy.url, "/generate/sync", TEXT2IMAGE, {
      signal: ctrl.signal,
    });
    await waitFor(() => comfy.requests === 2, 1000);
    ctrl.abort();
    await assert.rejects(running);
    await assert.rejects(queued);
    await waitFor(() => comfy.aborted === 2, 1000);
    const q = await (await fetch(`${comfy.url}/queue-info`)).json();
    assert.equal(q.generation_queue_size, 0);
    assert.doesNotMatch(
      await Deno.readTextFile(logFile.path),
      /BACKENDS_READY/,
    );
  }
  await using flaky = await startComfyUiServer({
    secondsPerImage: 0,
    failures: { errorRate: 1, crashAfterRequests: 1 },
  });
  const r = await (await post(flaky.url, "/generate/sync", TEXT2IMAGE)).json();
  assert.equal(r.status, "failed");
  await waitUntilRefused(flaky.url);
});

Deno.test("comfyui stand-in: /health of each wrapper version while ComfyUI loads and after; ComfyUI on its own port", async () => {
  const expected: Record<WrapperVersion, [number, string[]]> = {
    "2025-10-06": [200, []],
    "2025-12-05": [502, ["comfyui_error"]],
    "2026-05-06": [503, ["comfyui", "gpu"]],
    "2026-05-08": [503, ["backends_healthy", "gpu", "backends"]],
  };
  for (const wrapper of WRAPPER_VERSIONS) {
    await using logFile = await tempLog();
    await using comfyLog = await tempLog();
    await using comfy = await startComfyUiServer({
      wrapper,
      logFile: logFile.path,
      comfyLogFile: comfyLog.path,
      startupDelayMs: 300,
    });
    const [loadingStatus, keys] = expected[wrapper];
    const early = await fetch(`${comfy.url}/health`);
    assert.equal(early.status, loadingStatus, wrapper);
    const earlyBody = await early.json();
    assert.equal(
      earlyBody.status,
      loadingStatus === 200 ? "healthy" : "unhealthy",
      wrapper,
    );
    for (const k of keys) assert.ok(k in earlyBody, `${wrapper}: ${k}`);
    // ComfyUI is not listening yet.
    await assert.rejects(fetch(`${comfy.comfyUrl}/system_stats`), TypeError);
    await waitForLog(comfyLog.path, "To see the GUI go to: ");
    const stats = await fetch(`${comfy.comfyUrl}/system_stats`);
    assert.equal(stats.status, 200);
    assert.equal((await stats.json()).devices[0].type, "cuda");
    const late = await fetch(`${comfy.url}/health`);
    assert.equal(late.status, 200, wrapper);
    assert.equal((await late.json()).status, "healthy");
    await comfy.close(); // flushes the log
    const log = await Deno.readTextFile(logFile.path);
    assert.equal(
      /BACKENDS_READY/.test(log),
      wrapper === "2026-05-08",
      `${wrapper}: BACKENDS_READY only since 5bbf3e9`,
    );
  }
});

Deno.test("comfyui stand-in: a job while ComfyUI loads fails at once with HTTP 200 on old wrappers, waits on newer ones", async () => {
  {
    await using comfy = await startComfyUiServer({
      wrapper: "2025-10-06",
      secondsPerImage: 0,
      startupDelayMs: 60_000,
    });
    const t0 = performance.now();
    const r = await post(comfy.url, "/generate/sync", TEXT2IMAGE);
    assert.equal(r.status, 200);
    const body = await r.json();
    assert.equal(body.status, "failed");
    assert.match(
      body.message,
      /^Generation failed: Network error posting to ComfyUI: Cannot connect to host 127\.0\.0\.1:\d+/,
    );
    assert.deepEqual(body.timings, {}, "timings are filled since 993d47f");
    assert.ok(performance.now() - t0 < 1000, "a fast failure");
  }
  await using comfy = await startComfyUiServer({
    secondsPerImage: 0,
    startupDelayMs: 300,
  });
  const t0 = performance.now();
  const r = await post(comfy.url, "/generate/sync", TEXT2IMAGE);
  assert.equal(r.status, 200);
  assert.equal((await r.json()).status, "completed");
  assert.ok(performance.now() - t0 >= 250, "waited for ComfyUI");
});

Deno.test("comfyui stand-in: failed-job status mapping of 5352e36, and HTTP 200 before it", () => {
  const current = traitsOf("2026-05-08");
  const old = traitsOf("2026-05-06");
  const connect =
    "Generation failed: Failed to post workflow after 5 attempts: Cannot connect to host 127.0.0.1:18188";
  assert.equal(statusOfResult(current, "completed", ""), 200);
  assert.equal(statusOfResult(current, "failed", connect), 502);
  assert.equal(
    statusOfResult(
      current,
      "failed",
      "Generation failed: ComfyUI node errors: {}",
    ),
    500,
  );
  assert.equal(statusOfResult(current, "cancelled", ""), 499);
  assert.equal(statusOfResult(old, "failed", connect), 200);
});

Deno.test("comfyui stand-in: 503 + Retry-After when its queue is full (since 2026-05-06), queued before", async () => {
  for (const wrapper of ["2026-05-08", "2025-12-05"] as const) {
    await using comfy = await startComfyUiServer({
      wrapper,
      secondsPerImage: 0.3,
      maxQueueSize: 1,
    });
    const first = post(comfy.url, "/generate/sync", TEXT2IMAGE);
    await waitFor(() => comfy.requests === 1, 1000);
    const second = await post(comfy.url, "/generate/sync", {
      input: { request_id: "r2", modifier: "Text2Image" },
    });
    const body = await second.json();
    if (wrapper === "2026-05-08") {
      assert.equal(second.status, 503);
      assert.equal(second.headers.get("retry-after"), "5");
      assert.equal(body.id, "r2");
      assert.equal(body.status, "failed");
      assert.match(body.message, /^Worker at capacity \(1 in flight\)/);
    } else {
      assert.equal(second.status, 200, "unbounded before 6a9d0be");
      assert.equal(body.status, "completed");
    }
    assert.equal((await (await first).json()).status, "completed");
  }
});

Deno.test("comfyui stand-in: comfyui_response stripped by default since 2026-05-06, kept on request; full before", async () => {
  {
    await using comfy = await startComfyUiServer({ secondsPerImage: 0 });
    const slim = await (await post(comfy.url, "/generate/sync", TEXT2IMAGE))
      .json();
    assert.deepEqual(slim.comfyui_response, {});
    const asked = await (await post(comfy.url, "/generate/sync", TEXT2IMAGE, {
      headers: {
        "content-type": "application/json",
        "x-include-comfyui-response": "1",
      },
    })).json();
    assert.ok(asked.comfyui_response.execution_details);
  }
  {
    await using comfy = await startComfyUiServer({
      secondsPerImage: 0,
      includeComfyuiResponse: true,
    });
    const full = await (await post(comfy.url, "/generate/sync", TEXT2IMAGE))
      .json();
    assert.ok(full.comfyui_response.execution_details);
  }
  await using old = await startComfyUiServer({
    secondsPerImage: 0,
    wrapper: "2025-12-05",
  });
  const full = await (await post(old.url, "/generate/sync", TEXT2IMAGE)).json();
  assert.ok(full.comfyui_response.execution_details);
});
