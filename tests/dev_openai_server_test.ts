import assert from "node:assert/strict";
import OpenAI from "openai";
import parsePrometheus from "parse-prometheus-text-format";
import { startOpenAiServer } from "../dev/openai_server.ts";
import {
  health,
  tempLog,
  waitForLog,
  waitUntilRefused,
} from "./helpers/dev.ts";
import { post, readEvents, waitFor } from "./helpers/http.ts";

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const families = parsePrometheus(text) as {
    name: string;
    metrics: { value: string }[];
  }[];
  const family = families.find((f) => f.name === name);
  assert.ok(family, `metric ${name} missing`);
  return Number(family.metrics[0].value);
}

Deno.test("openai stand-in streams one token per chunk at the set rate, [DONE] last", async () => {
  await using llm = await startOpenAiServer({ tokensPerSecond: 50 });
  const t0 = performance.now();
  const res = await post(llm.url, "/v1/completions", {
    model: "Qwen/Qwen3-0.6B",
    prompt: "Say hi",
    max_tokens: 10,
    stream: true,
    stream_options: { include_usage: true },
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/event-stream/);
  const events = await readEvents(res);
  assert.equal(events.at(-1)!.data, "[DONE]");
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
  const tokens = chunks.filter((c) => c.choices.length === 1);
  assert.equal(tokens.length, 10);
  assert.equal(tokens[0].object, "text_completion");
  assert.match(tokens[0].id, /^cmpl-/);
  assert.equal(typeof tokens[0].choices[0].text, "string");
  assert.equal(tokens[9].choices[0].finish_reason, "length");
  assert.equal(tokens[8].choices[0].finish_reason, null);
  const usage = chunks.at(-1);
  assert.deepEqual(usage.choices, []);
  assert.equal(usage.usage.completion_tokens, 10);
  assert.equal(usage.usage.prompt_tokens, 2);
  // 10 tokens at 50/s: ~20 ms apart, never sooner than 200 ms in all.
  const times = events.slice(0, 10).map((e) => e.at);
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
  assert.ok(mean > 8 && mean < 60, `mean gap ${mean} ms`);
  assert.ok(events[9].at - t0 >= 190, "tokens arrived too fast");
});

Deno.test("openai stand-in answers completions and chat as JSON, shaped like vLLM", async () => {
  await using llm = await startOpenAiServer({
    tokensPerSecond: 1000,
    model: "m",
  });
  const c = await (await post(llm.url, "/v1/completions", {
    prompt: "a b c",
    max_tokens: 5,
  })).json();
  assert.equal(c.object, "text_completion");
  assert.equal(c.model, "m");
  assert.equal(typeof c.created, "number");
  assert.equal(c.choices[0].finish_reason, "length");
  assert.deepEqual(
    [c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.total_tokens],
    [3, 5, 8],
  );
  const body = {
    messages: [{ role: "user", content: "hi" }],
    max_completion_tokens: 3,
  };
  const chat = await (await post(llm.url, "/v1/chat/completions", body))
    .json();
  assert.equal(chat.object, "chat.completion");
  assert.match(chat.id, /^chatcmpl-/);
  assert.equal(chat.choices[0].message.role, "assistant");
  assert.equal(chat.usage.completion_tokens, 3);
  assert.deepEqual(llm.lastBody, body);
  const dflt = await (await post(llm.url, "/v1/completions", { prompt: "x" }))
    .json();
  assert.equal(dflt.usage.completion_tokens, 16);
  assert.equal(llm.requests, 3);
  const models = await (await fetch(`${llm.url}/v1/models`)).json();
  assert.equal(models.data[0].id, "m");
  const emb =
    await (await post(llm.url, "/v1/embeddings", { input: ["a", "b"] }))
      .json();
  assert.equal(emb.data.length, 2);
  assert.equal(emb.data[0].object, "embedding");
  assert.ok(Math.abs(Math.hypot(...emb.data[0].embedding) - 1) < 1e-3);
});

Deno.test("openai stand-in rejects bad requests with vLLM 0.10.1's nested error body", async () => {
  await using llm = await startOpenAiServer();
  const cases: [string, unknown, number, string][] = [
    ["/v1/completions", { max_tokens: 4 }, 400, "BadRequestError"],
    ["/v1/chat/completions", { max_tokens: 4 }, 400, "BadRequestError"],
    [
      "/v1/completions",
      { prompt: "x", max_tokens: 0 },
      400,
      "BadRequestError",
    ],
    [
      "/v1/completions",
      { prompt: "x", max_tokens: "many" },
      400,
      "BadRequestError",
    ],
    [
      "/v1/completions",
      { prompt: "x", max_tokens: 5000 },
      400,
      "BadRequestError",
    ],
    ["/v1/completions", { model: "nope", prompt: "x" }, 404, "NotFoundError"],
  ];
  for (const [path, body, status, type] of cases) {
    const res = await post(llm.url, path, body);
    const answer = await res.json();
    assert.equal(res.status, status, JSON.stringify(body));
    assert.deepEqual(Object.keys(answer), ["error"]);
    const err = answer.error;
    assert.deepEqual(Object.keys(err).sort(), [
      "code",
      "message",
      "param",
      "type",
    ]);
    assert.equal(err.type, type);
    assert.equal(err.code, status);
    assert.equal(err.param, null);
  }
  assert.match(
    (await (await post(llm.url, "/v1/completions", {
      model: "nope",
      prompt: "x",
    })).json()).error.message,
    /The model `nope` does not exist/,
  );
});

Deno.test("openai stand-in error bodies by what it imitates: vLLM 0.10.0 and SGLang flat, llama.cpp its own", async () => {
  const bad = { prompt: "x", max_tokens: 0 };
  const cases = [
    [{ vllmVersion: "0.10.0" }, {
      object: "error",
      message: "max_tokens must be at least 1, got 0.",
      type: "BadRequestError",
      param: null,
      code: 400,
    }],
    [{ flavor: "sglang" }, {
      object: "error",
      message: "max_tokens must be at least 1, got 0.",
      type: "BadRequestError",
      param: null,
      code: 400,
    }],
    [{ flavor: "llama_cpp" }, {
      error: {
        code: 400,
        message: "max_tokens must be at least 1, got 0.",
        type: "invalid_request_error",
      },
    }],
  ] as const;
  for (const [options, expected] of cases) {
    await using llm = await startOpenAiServer(options);
    const res = await post(llm.url, "/v1/completions", bad);
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), expected, JSON.stringify(options));
  }
});

Deno.test("openai stand-in chat without max_tokens generates up to the remaining context, as vLLM does; completions 16", async () => {
  await using llm = await startOpenAiServer({
    tokensPerSecond: 5000,
    maxModelLen: 40,
  });
  const chat = await post(llm.url, "/v1/chat/completions", {
    messages: [{ role: "user", content: "one two three" }],
  });
  const body = await chat.json();
  // 2 tokens of chat template per message + 3 words.
  assert.equal(body.usage.prompt_tokens, 5);
  assert.equal(body.usage.completion_tokens, 40 - 5);
  const completion = await (await post(llm.url, "/v1/completions", {
    prompt: "one two three",
  })).json();
  assert.equal(completion.usage.completion_tokens, 16);
  const full = await post(llm.url, "/v1/chat/completions", {
    messages: [{ role: "user", content: "w ".repeat(40) }],
  });
  assert.equal(full.status, 400);
  assert.match(
    (await full.json()).error.message,
    /maximum context length is 40 tokens/,
  );
});

Deno.test("sglang stand-in: /health is 503 while starting, then takes a generation's time (healthSeconds)", async () => {
  await using llm = await startOpenAiServer({
    flavor: "sglang",
    startupDelayMs: 300,
    healthSeconds: 1.5,
  });
  const t0 = performance.now();
  assert.equal((await health(llm.url)).status, 503);
  assert.ok(performance.now() - t0 < 1000, "503 at once while starting");
  await waitFor(
    async () => {
      const r = await fetch(`${llm.url}/v1/models`);
      await r.body?.cancel();
      return r.status === 200;
    },
    3000,
    "up",
  );
  const t1 = performance.now();
  assert.equal((await health(llm.url)).status, 200);
  assert.ok(performance.now() - t1 >= 1400, "a generation's time");
  assert.equal(llm.healthChecks, 2);
});

Deno.test("sglang stand-in serves /metrics only with enableMetrics, under SGLang's own names", async () => {
  {
    await using plain = await startOpenAiServer({ flavor: "sglang" });
    const res = await fetch(`${plain.url}/metrics`);
    await res.body?.cancel();
    assert.equal(res.status, 404);
  }
  await using llm = await startOpenAiServer({
    flavor: "sglang",
    enableMetrics: true,
    tokensPerSecond: 5000,
  });
  await (await post(llm.url, "/v1/completions", { prompt: "x" })).json();
  const text = await (await fetch(`${llm.url}/metrics`)).text();
  assert.doesNotMatch(text, /vllm:/);
  assert.match(
    text,
    /^sglang:num_running_reqs\{model_name="Qwen\/Qwen3-0\.6B",engine_type="unified",tp_rank="0",pp_rank="0"\} 0\.0$/m,
  );
  assert.equal(await metric(llm.url, "sglang:num_queue_reqs"), 0);
  assert.equal(await metric(llm.url, "sglang:token_usage"), 0);
  assert.match(
    text,
    /^sglang:time_to_first_token_seconds_count\{model_name="Qwen\/Qwen3-0\.6B"\} 1\.0$/m,
  );
});

Deno.test("llama.cpp stand-in answers embeddings 501 unless started with embeddings", async () => {
  {
    await using llm = await startOpenAiServer({ flavor: "llama_cpp" });
    const res = await post(llm.url, "/v1/embeddings", { input: "a" });
    assert.equal(res.status, 501);
    assert.deepEqual(await res.json(), {
      error: {
        code: 501,
        message:
          "This server does not support embeddings. Start it with `--embeddings`",
        type: "not_supported_error",
      },
    });
  }
  await using llm = await startOpenAiServer({
    flavor: "llama_cpp",
    embeddings: true,
  });
  const res = await post(llm.url, "/v1/embeddings", { input: "a" });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).data.length, 1);
});

Deno.test("openai stand-in answers 503 while loading, then logs vLLM's ready lines", async () => {
  await using logFile = await tempLog();
  await using llm = await startOpenAiServer({
    logFile: logFile.path,
    startupDelayMs: 200,
  });
  assert.equal((await health(llm.url)).status, 503);
  const boot = await Deno.readTextFile(logFile.path);
  assert.match(boot, /Starting to load model/);
  assert.doesNotMatch(boot, /Application startup complete\./);
  await waitForLog(logFile.path, "INFO:     Application startup complete.");
  const log = await Deno.readTextFile(logFile.path);
  assert.match(log, /^INFO: {5}Started server process \[\d+\]$/m);
  assert.match(log, /^INFO: {5}Waiting for application startup\.$/m);
  assert.equal((await health(llm.url)).status, 200);
});

Deno.test("openai stand-in counts a client that goes away mid-stream", async () => {
  await using llm = await startOpenAiServer({ tokensPerSecond: 100 });
  const ctrl = new AbortController();
  const res = await post(llm.url, "/v1/chat/completions", {
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 200,
    stream: true,
  }, { signal: ctrl.signal });
  const events = await readEvents(res, 3, ctrl);
  assert.deepEqual(JSON.parse(events[0].data).choices[0].delta, {
    role: "assistant",
    content: "",
  });
  await waitFor(() => llm.aborted === 1, 1000);
  assert.equal(await metric(llm.url, "vllm:num_requests_running"), 0);
  // A non-streaming request dropped while generating counts too.
  const ctrl2 = new AbortController();
  const pending = post(llm.url, "/v1/completions", {
    prompt: "x",
    max_tokens: 200,
  }, { signal: ctrl2.signal });
  await waitFor(
    async () => await metric(llm.url, "vllm:num_requests_running") === 1,
    1000,
  );
  ctrl2.abort();
  await assert.rejects(pending);
  await waitFor(() => llm.aborted === 2, 1000);
});

Deno.test("openai stand-in queues requests beyond maxConcurrency", async () => {
  await using llm = await startOpenAiServer({
    tokensPerSecond: 100,
    maxConcurrency: 1,
  });
  const t0 = performance.now();
  const a = post(llm.url, "/v1/completions", {
    prompt: "x",
    max_tokens: 10,
  });
  const b = post(llm.url, "/v1/completions", {
    prompt: "y",
    max_tokens: 10,
  });
  await waitFor(
    async () => await metric(llm.url, "vllm:num_requests_waiting") === 1,
    1000,
  );
  assert.equal(await metric(llm.url, "vllm:num_requests_running"), 1);
  const [ra, rb] = await Promise.all([a, b]);
  await Promise.all([ra.json(), rb.json()]);
  assert.ok(performance.now() - t0 >= 180, "second request did not wait");
  const text = await (await fetch(`${llm.url}/metrics`)).text();
  assert.match(
    text,
    /^vllm:time_to_first_token_seconds_count\{engine="0",model_name="[^"]+"\} 2\.0$/m,
  );
  assert.match(text, /^vllm:kv_cache_usage_perc\{/m);
});

Deno.test("openai stand-in crash() logs the engine's death and refuses connections", async () => {
  await using logFile = await tempLog();
  await using supervisor = await tempLog();
  await using llm = await startOpenAiServer({
    logFile: logFile.path,
    supervisorLog: supervisor.path,
    tokensPerSecond: 100,
  });
  const inflight = post(llm.url, "/v1/completions", {
    prompt: "x",
    max_tokens: 100,
  });
  await waitFor(() => llm.requests === 1, 1000);
  await llm.crash();
  const failed = await inflight;
  assert.equal(failed.status, 500);
  assert.equal((await failed.json()).error.type, "InternalServerError");
  const log = await Deno.readTextFile(logFile.path);
  assert.match(log, /RuntimeError: Engine/);
  // supervisord's lines are in its own log (supervisor 4.x: WARN), never
  // in the engine's.
  assert.doesNotMatch(log, /exited:/);
  const sup = await Deno.readTextFile(supervisor.path);
  assert.match(sup, /^\S+ \S+ INFO spawned: 'vllm' with pid \d+$/m);
  assert.match(
    sup,
    /^\S+ \S+ WARN exited: vllm \(exit status 1; not expected\)$/m,
  );
  await assert.rejects(fetch(`${llm.url}/health`), TypeError);
});

Deno.test("openai stand-in failure injection: errorRate, crashAfterRequests, failStartup", async () => {
  {
    await using flaky = await startOpenAiServer({
      failures: { errorRate: 1, crashAfterRequests: 2 },
    });
    const r = await post(flaky.url, "/v1/completions", { prompt: "x" });
    assert.equal(r.status, 500);
    assert.equal((await r.json()).error.type, "InternalServerError");
    const r2 = await post(flaky.url, "/v1/completions", { prompt: "x" });
    await r2.body?.cancel();
    await waitUntilRefused(flaky.url);
  }
  await using logFile = await tempLog();
  await using supervisor = await tempLog();
  await using _broken = await startOpenAiServer({
    logFile: logFile.path,
    supervisorLog: supervisor.path,
    flavor: "llama_cpp",
    failures: { failStartup: true },
  });
  await waitForLog(supervisor.path, "WARN exited: llama (exit status 1;");
  const log = await Deno.readTextFile(logFile.path);
  assert.match(log, /error loading model/);
  assert.doesNotMatch(log, /main: model loaded/);
});

Deno.test("openai stand-in writes SGLang and llama.cpp ready lines", async () => {
  for (
    const [flavor, line] of [
      ["sglang", "The server is fired up and ready to roll!"],
      ["llama_cpp", "main: model loaded"],
    ] as const
  ) {
    await using logFile = await tempLog();
    await using _llm = await startOpenAiServer({
      logFile: logFile.path,
      flavor,
    });
    await waitForLog(logFile.path, line);
  }
});

Deno.test("openai stand-in works with the official openai client, streaming and not", async () => {
  await using llm = await startOpenAiServer({
    tokensPerSecond: 500,
    model: "m",
  });
  const client = new OpenAI({
    baseURL: `${llm.url}/v1`,
    apiKey: "x",
    maxRetries: 0,
  });
  const done = await client.chat.completions.create({
    model: "m",
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 4,
  });
  assert.equal(done.usage?.completion_tokens, 4);
  const stream = await client.completions.create({
    model: "m",
    prompt: "hi",
    max_tokens: 5,
    stream: true,
  });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
  assert.equal(text.trim().split(/\s+/).length, 5);
});

Deno.test("openai stand-in setTokensPerSecond changes the speed at once", async () => {
  await using llm = await startOpenAiServer({ tokensPerSecond: 10 });
  llm.setTokensPerSecond(1000);
  const t0 = performance.now();
  const res = await post(llm.url, "/v1/completions", {
    prompt: "x",
    max_tokens: 20,
  });
  assert.equal((await res.json()).usage.completion_tokens, 20);
  assert.ok(
    performance.now() - t0 < 1000,
    "20 tokens at 10/s would take 2 s",
  );
  assert.throws(() => llm.setTokensPerSecond(0), RangeError);
});

Deno.test("openai stand-in in log-tee mode (base-image a7552d1): .old at start, colours, \\r progress, rotation by rename", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dev_openai_tee_" });
  const path = `${dir}/vllm.log`;
  try {
    await Deno.writeTextFile(path, "previous boot\n");
    await using llm = await startOpenAiServer({
      logFile: path,
      startupDelayMs: 600,
      logTee: {
        mode: "log-tee@base-image-a7552d1",
        maxBytes: 4096,
        keepBytes: 1024,
        checkBytes: 512,
      },
    });
    assert.equal(await Deno.readTextFile(`${path}.old`), "previous boot\n");
    const ino = (await Deno.stat(path)).ino;
    await waitForLog(path, "Application startup complete.");
    const log = await Deno.readTextFile(path);
    // uvicorn's coloured level, tqdm's \r redraws, and the rotation's copy.
    assert.ok(
      log.includes("\x1b[32mINFO\x1b[0m:     Application startup complete."),
    );
    assert.match(
      log,
      /\rLoading safetensors checkpoint shards: +\d+% Completed/,
    );
    assert.ok(llm.logRotations >= 1, `rotations ${llm.logRotations}`);
    assert.notEqual((await Deno.stat(path)).ino, ino, "replaced by rename");
    assert.ok((await Deno.stat(path)).size <= 4096 + 2048);
    assert.doesNotMatch(log, /previous boot/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
