/**
 * End to end, the OpenAI-compatible presets (vllm, sglang, llama_cpp):
 * `main.ts run --preset <name>` against lib/dev's OpenAI stand-in in the
 * engine's log flavor, with signed requests from the control-plane
 * stand-in. The three run at once.
 */
import assert from "node:assert/strict";
import { appendLog } from "../helpers/dev.ts";
import { type Flavor, startOpenAiServer } from "../../dev/openai_server.ts";
import { allScenarios, inTempDir } from "./_presets.ts";
import { sseEvents } from "../helpers/http.ts";

const MODEL = "Qwen/Qwen3-0.6B";

interface Case {
  preset: string;
  flavor: Flavor;
  /** The engine's own model variable. */
  modelEnv: string;
  /** What `error_msg` shows after the stand-in's crash lines. */
  crash: RegExp;
}

const CASES: Case[] = [
  {
    preset: "vllm",
    flavor: "vllm",
    modelEnv: "VLLM_MODEL",
    crash: /EngineCore encountered a fatal error\./,
  },
  {
    preset: "sglang",
    flavor: "sglang",
    modelEnv: "SGLANG_MODEL",
    crash: /Scheduler hit an exception/,
  },
  {
    preset: "llama_cpp",
    flavor: "llama_cpp",
    modelEnv: "LLAMA_MODEL",
    // ggml_cuda_error()'s abort: fatal at any time.
    crash: /ggml-cuda\.cu:\d+: CUDA error/,
  },
];

function scenario(c: Case): Promise<void> {
  return inTempDir(c.preset, async ({ dir, defer, startAgainst }) => {
    const logFile = `${dir}/engine.log`;
    const llm = await startOpenAiServer({
      logFile,
      flavor: c.flavor,
      model: MODEL,
      tokensPerSecond: 5000,
      // llama-server --embeddings (the others always serve them).
      embeddings: true,
    });
    defer(() => llm.close());
    const w = await startAgainst(llm.url, logFile, c.preset, {
      [c.modelEnv]: MODEL,
    });

    // The benchmark ran against the stand-in with the model named by the
    // engine's own variable, and measured something.
    await w.waitBenchmarked();
    const bench = llm.lastBody as Record<string, unknown>;
    assert.equal(bench.model, MODEL);
    assert.equal(bench.max_tokens, 500);
    assert.ok(await Deno.stat(`${dir}/.has_benchmark`));

    // Completions, bare body: the requested 5, as the client's cost (a
    // 4,000-character prompt does not count: Python's rule).
    const completion = await w.call("/v1/completions", {
      prompt: "a".repeat(4000),
      max_tokens: 5,
    });
    assert.equal(completion.status, 200);
    const cbody = await completion.json();
    assert.equal(cbody.object, "text_completion");
    assert.ok(cbody.choices[0].text.length > 0);
    assert.equal(cbody.usage.completion_tokens, 5);

    // Chat, streamed, wrapped as {"input": ...}: 4.
    const streamed = await w.call("/v1/chat/completions", {
      input: {
        messages: [{ role: "user", content: "b".repeat(20) }],
        max_tokens: 4,
        stream: true,
      },
    });
    assert.equal(streamed.status, 200);
    assert.match(streamed.headers.get("content-type") ?? "", /event-stream/);
    const text = await streamed.text();
    assert.match(text, /data: \[DONE\]/);
    const deltas = sseEvents(text).flatMap((e) =>
      (e.choices as { delta: { content?: string } }[])
        .map((ch) => ch.delta.content)
        .filter((t) => t)
    );
    assert.equal(deltas.length, 4);
    const forwarded = llm.lastBody as Record<string, unknown>;
    assert.equal(forwarded.input, undefined, "the wrapper was removed");
    assert.equal(forwarded.stream, true);

    // Chat with max_completion_tokens: 3.
    const chat = await w.call("/v1/chat/completions", {
      messages: [{ role: "user", content: "c".repeat(8) }],
      max_completion_tokens: 3,
    });
    assert.equal(chat.status, 200);
    const chatBody = await chat.json();
    assert.equal(chatBody.object, "chat.completion");
    assert.equal(chatBody.usage.completion_tokens, 3);

    // Embeddings, as Python counts them: 12 of 600 chars, clamped at 50.
    const embedding = await w.call("/v1/embeddings", { input: "d".repeat(12) });
    assert.equal(embedding.status, 200);
    const ebody = await embedding.json();
    assert.ok(ebody.data[0].embedding.length > 0);

    // A forged signature is refused (and not counted as new load).
    const forged = await w.call(
      "/v1/completions",
      { prompt: "x", max_tokens: 1 },
      { ...await w.route(), url: "http://203.0.113.9:1" },
    );
    assert.equal(forged.status, 401);
    await forged.body?.cancel();

    await w.waitNewLoad(5 + 4 + 3 + 50);

    // One bad request's traceback does not put the worker in error.
    const marker = `e2e-marker-${c.preset}`;
    await appendLog(
      logFile,
      "Traceback (most recent call last):",
      '  File "/app/serving.py", line 12, in create_completion',
      "ValueError: invalid logit bias",
      `{"message":"Download ${marker}"}`,
    );
    await w.waitOutput(marker);
    await w.assertReady();

    // The engine dies: its fatal lines put the worker in error, and the
    // autoscaler hears of it.
    await llm.crash();
    assert.match(await w.waitError(), c.crash);
    await w.cp.waitFor(
      "status",
      (b) => c.crash.test(String((b as { error_msg?: string }).error_msg)),
    );
  });
}

Deno.test("vllm, sglang and llama_cpp presets serve, count and fail end to end", async () => {
  await allScenarios(CASES.map(scenario));
});
