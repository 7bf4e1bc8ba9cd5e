/**
 * End to end, the presets for TGI-style servers: `tgi` and `generic`
 * (configured from env alone) against dev/'s TGI stand-in, and
 * `hello_world` against dev/'s tutorial stand-in. The three
 * run at once, each a `main.ts run --preset <name>` subprocess with signed
 * requests from the control-plane stand-in.
 */
import assert from "node:assert/strict";
import { appendLog } from "../helpers/dev.ts";
import { startTgiServer } from "../../dev/tgi_server.ts";
import { startHelloWorldServer } from "../../dev/hello_world_server.ts";
import { allScenarios, inTempDir } from "./_presets.ts";
import { sseEvents } from "../helpers/http.ts";

/** The last body a stand-in received, as a JSON object. */
function bodyOf(s: { lastBody: unknown }): Record<string, unknown> {
  return s.lastBody as Record<string, unknown>;
}

function tgiScenario(): Promise<void> {
  return inTempDir("tgi", async ({ dir, defer, startAgainst }) => {
    const logFile = `${dir}/infer.log`;
    const tgi = await startTgiServer({ logFile, tokensPerSecond: 5000 });
    defer(() => tgi.close());
    const w = await startAgainst(tgi.url, logFile, "tgi");
    await w.waitBenchmarked();
    const bench = tgi.lastBody as { parameters: { max_new_tokens: number } };
    assert.equal(bench.parameters.max_new_tokens, 128);

    // Python's rule: max_new_tokens alone, whatever the prompt: 6.
    const r = await w.call("/generate", {
      inputs: "d".repeat(4000),
      parameters: { max_new_tokens: 6 },
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("x-generated-tokens"), "6");
    assert.ok(((await r.json()).generated_text as string).length > 0);

    // Streamed: 3 new.
    const s = await w.call("/generate_stream", {
      inputs: "the quick brown fox",
      parameters: { max_new_tokens: 3 },
    });
    assert.equal(s.status, 200);
    assert.match(s.headers.get("content-type") ?? "", /event-stream/);
    const events = sseEvents(await s.text());
    assert.equal(events.length, 3);
    assert.equal(typeof events[2].generated_text, "string");

    // Wrapped, no max_new_tokens: TGI's default of 100.
    const wrapped = await w.call("/generate", {
      input: { inputs: "e".repeat(8) },
    });
    assert.equal(wrapped.status, 200);
    // Read it all: a client that drops the body cancels the request, and a
    // cancelled request's workload leaves new_load.
    assert.ok((await wrapped.json()).generated_text);
    assert.deepEqual(tgi.lastBody, { inputs: "e".repeat(8) });

    await w.waitNewLoad(6 + 3 + 100);

    // A per-request failure line leaves the worker ready.
    const marker = "e2e-marker-tgi";
    await appendLog(
      logFile,
      JSON.stringify({
        level: "ERROR",
        message: "Request failed during generation: Server error: CUDA OOM",
        target: "text_generation_router::infer",
      }),
      `{"message":"Download ${marker}"}`,
    );
    await w.waitOutput(marker);
    await w.assertReady();

    await tgi.crash();
    assert.match(await w.waitError(), /Error: WebserverFailed/);
  });
}

function genericScenario(): Promise<void> {
  return inTempDir("generic", async ({ dir, defer, start }) => {
    const logFile = `${dir}/server.log`;
    const tgi = await startTgiServer({ logFile, tokensPerSecond: 5000 });
    defer(() => tgi.close());
    await Deno.writeTextFile(
      `${dir}/bench.json`,
      JSON.stringify({
        inputs: "benchmark words for the generic preset",
        parameters: { max_new_tokens: 8 },
      }),
    );
    const w = await start("generic", {
      MODEL_SERVER_URL: tgi.url,
      EDGEWORKER_ROUTES: "/generate, /stream=/generate_stream",
      EDGEWORKER_PARALLEL: "true",
      EDGEWORKER_WORKLOAD: "7",
      MODEL_LOG: logFile,
      MODEL_LOAD_LOG_MSG: '"message":"Connected"',
      MODEL_ERROR_LOG_MSGS: "Error: WebserverFailed\nError: ShardFailed\n",
      MODEL_HEALTH_ENDPOINT: "/health",
      BENCHMARK_JSON_PATH: `${dir}/bench.json`,
      BENCHMARK_RUNS: "1",
      BENCHMARK_CONCURRENCY: "2",
    });
    await w.waitBenchmarked();
    assert.deepEqual(tgi.lastBody, {
      inputs: "benchmark words for the generic preset",
      parameters: { max_new_tokens: 8 },
    });

    const r = await w.call("/generate", {
      inputs: "hello",
      parameters: { max_new_tokens: 2 },
    });
    assert.equal(r.status, 200);
    assert.equal(typeof (await r.json()).generated_text, "string");
    // `/stream` is forwarded to the server's `/generate_stream`.
    const s = await w.call("/stream", {
      inputs: "hello",
      parameters: { max_new_tokens: 2 },
    });
    assert.equal(s.status, 200);
    assert.equal(sseEvents(await s.text()).length, 2);
    await w.waitNewLoad(7 + 7);

    // The second pattern of the newline list is a fatal one too.
    await tgi.crash("ShardFailed");
    assert.match(await w.waitError(), /Error: ShardFailed/);
  });
}

function helloWorldScenario(): Promise<void> {
  return inTempDir("hello_world", async ({ dir, defer, startAgainst }) => {
    const logFile = `${dir}/infer.log`;
    const model = await startHelloWorldServer({ logFile });
    defer(() => model.close());
    const w = await startAgainst(model.url, logFile, "hello_world");
    await w.waitBenchmarked();
    assert.equal(bodyOf(model).max_response_tokens, 300);

    // 32 chars ≈ 8 prompt tokens (the tutorial counts the prompt only).
    const r = await w.call("/generate", {
      prompt: "g".repeat(32),
      max_response_tokens: 5,
      extra: "dropped",
    });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), {
      response: "hello from the tutorial model",
      tokens: 5,
    });
    assert.deepEqual(model.lastBody, {
      prompt: "g".repeat(32),
      max_response_tokens: 5,
    });
    // 12 chars = 3.
    const s = await w.call("/generate_stream", {
      prompt: "h".repeat(12),
      max_response_tokens: 3,
    });
    assert.equal(s.status, 200);
    assert.deepEqual(sseEvents(await s.text()).map((e) => e.token), [
      "hello",
      " from",
      " the",
    ]);
    // The tutorial's payload check: 422, nothing forwarded or counted.
    const before = model.requests;
    const bad = await w.call("/generate", { prompt: "no max tokens" });
    assert.equal(bad.status, 422);
    assert.match(await bad.text(), /max_response_tokens/);
    assert.equal(model.requests, before);

    await w.waitNewLoad(8 + 3);
    await model.crash();
    assert.match(await w.waitError(), /Exception: corrupted model file/);
  });
}

Deno.test("tgi, generic and hello_world presets serve, count and fail end to end", async () => {
  await allScenarios([tgiScenario(), genericScenario(), helloWorldScenario()]);
});
