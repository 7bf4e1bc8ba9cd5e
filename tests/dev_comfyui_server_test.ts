import assert from "node:assert/strict";
import { text2ImageWorkflow } from "../dev/_comfy_api.ts";
import { startComfyUiServer } from "../dev/comfyui_server.ts";
import { tempLog, waitForLog, waitUntilRefused } from "./helpers/dev.ts";
import { post, waitFor } from "./helpers/http.ts";

/** Two 512×512 images saved as `cat_NNNNN_.png` by node 9. */
const WORKFLOW = text2ImageWorkflow({ batch_size: 2 }, "cat");

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
  // ComfyUI itself refuses a graph without outputs: the wrapper answers 200, "failed".
  const noOut = await post(comfy.url, "/generate/sync", {
    input: {
      workflow_json: { "1": { class_type: "VAEDecode", inputs: {} } },
    },
  });
  assert.equal(noOut.status, 200);
  const failed = await noOut.json();
  assert.equal(failed.status, "failed");
  assert.match(failed.message, /^Generation failed: .*prompt_no_outputs/);
  assert.deepEqual(failed.output, []);
  const noClass = await post(comfy.url, "/generate/sync", {
    input: { workflow_json: { "1": { inputs: {} } } },
  });
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
  const job = post(comfy.url, "/generate/sync", {
    input: { modifier: "Text2Image" },
  });
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
      readySignal: false,
    });
    const ctrl = new AbortController();
    const running = post(comfy.url, "/generate/sync", {
      input: { modifier: "Text2Image" },
    }, { signal: ctrl.signal });
    const queued = post(comfy.url, "/generate/sync", {
      input: { modifier: "Text2Image" },
    }, { signal: ctrl.signal });
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
  const r = await (await post(flaky.url, "/generate/sync", {
    input: { modifier: "Text2Image" },
  })).json();
  assert.equal(r.status, "failed");
  await waitUntilRefused(flaky.url);
});
