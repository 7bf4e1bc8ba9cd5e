/**
 * The 2026 Python OpenAI worker's routes and knobs in the vLLM, SGLang and
 * llama.cpp presets: `OPENAI_ROUTES` serves the extra routes with Python's
 * workload rule for each, `BENCHMARK_ROUTE` moves the benchmark (whose
 * payloads weigh one reference request, 500), and bad values are errors
 * naming the variable. The last test runs a worker against a scripted
 * model server.
 */
import assert from "node:assert/strict";
import {
  type Payload,
  type ResolvedWorkerConfig,
} from "../lib/config/schemas.ts";
import { ConfigError, parseWorkerConfig } from "../lib/config/file.ts";
import { workloadOf } from "../lib/traffic/workload.ts";
import { type EnvVars, findPreset } from "../workers/mod.ts";
import { post, waitFor } from "./helpers/http.ts";
import { startUpstream } from "./helpers/upstream.ts";
import { envelope, startWorker } from "./helpers/worker.ts";

function configOf(env: EnvVars, name = "vllm"): ResolvedWorkerConfig {
  return parseWorkerConfig(findPreset(name)!.config(env), `preset ${name}`);
}

function workload(c: ResolvedWorkerConfig, route: string) {
  const h = c.handlers.find((h) => h.route === route);
  assert.ok(h, `route ${route} served`);
  return workloadOf(h.workload, route);
}

const EXTRA = [
  "/v1/chat/completions/batch",
  "/v1/audio/speech",
  "/v1/audio/speech/batch",
  "/v1/audio/generate",
  "/v1/embeddings",
  "/v1/rerank",
  "/v1/score",
  "/v1/images/generations",
];

Deno.test("unset, the routes are completions, chat and embeddings, completions benchmarked", () => {
  for (const name of ["vllm", "sglang", "llama_cpp"]) {
    const c = configOf({}, name);
    assert.deepEqual(c.handlers.map((h) => h.route), [
      "/v1/completions",
      "/v1/chat/completions",
      "/v1/embeddings",
    ]);
    assert.deepEqual(
      c.handlers.filter((h) => h.benchmark).map((h) => h.route),
      ["/v1/completions"],
    );
    for (const h of c.handlers) {
      assert.equal(h.allowParallelRequests, true);
      assert.equal(h.maxQueueTime, 600);
    }
  }
});

Deno.test("OPENAI_ROUTES serves exactly the routes listed, in Python's table order, each with Python's workload rule", () => {
  const c = configOf({
    OPENAI_ROUTES: ` /v1/completions,${[...EXTRA].reverse().join(" , ")},`,
  });
  assert.deepEqual(c.handlers.map((h) => h.route), [
    "/v1/completions",
    ...EXTRA,
  ]);
  const w = (route: string, p: Payload) => workload(c, route)(p);
  const text = (n: number) => "t".repeat(n);
  // Rerank and score: (query, document) pairs against 16 × (60 + 250) characters.
  const docs = Array.from({ length: 16 }, () => text(250));
  assert.equal(w("/v1/rerank", { query: text(60), documents: docs }), 500);
  assert.equal(
    w("/v1/rerank", { query: text(60), documents: docs.slice(0, 8) }),
    250,
  );
  assert.equal(w("/v1/score", { queries: text(60), items: docs }), 500);
  assert.equal(
    w("/v1/score", { text_1: [text(2480), text(10)], text_2: [text(2480)] }),
    500,
    "two lists pair up, the longer one cut",
  );
  // Speech: characters plus 500 per voice-clone reference, against 500.
  assert.equal(w("/v1/audio/speech", { input: text(500) }), 500);
  assert.equal(
    w("/v1/audio/speech", { input: text(500), ref_audio: "https://a/b.wav" }),
    1000,
  );
  assert.equal(
    w("/v1/audio/speech", { input: "😀".repeat(500) }),
    500,
    "characters are code points, as Python's len()",
  );
  assert.equal(
    w("/v1/audio/speech/batch", {
      ref_audio: "https://a/b.wav",
      items: [{ input: text(250) }, { input: text(250) }],
    }),
    1500,
  );
  // Images: n × pixels against one 1024 × 1024 image.
  assert.equal(w("/v1/images/generations", { prompt: "p" }), 500);
  assert.equal(
    w("/v1/images/generations", { size: "512x512", n: 2 }),
    250,
  );
  assert.equal(
    w("/v1/images/generations", { size: "1024x1024", n: 100 }),
    4000,
    "clamped at 8 requests",
  );
  assert.equal(w("/v1/images/generations", { size: "auto" }), 500);
  // Chat batches: conversations × max_tokens (500 when absent).
  const conv = [{ role: "user", content: "hi" }];
  assert.equal(
    w("/v1/chat/completions/batch", {
      messages: [conv, conv, conv, conv],
      max_tokens: 125,
    }),
    500,
  );
  assert.equal(
    w("/v1/chat/completions/batch", { messages: [conv, conv] }),
    1000,
  );
  assert.equal(
    w("/v1/chat/completions/batch", { messages: [conv], max_tokens: 1 }),
    50,
    "clamped at a tenth of a request",
  );
  assert.equal(w("/v1/audio/generate", { audio_length: 300 }), 500);
  assert.equal(w("/v1/embeddings", { input: text(1200) }), 1000);
});

Deno.test("BENCHMARK_ROUTE moves the benchmark; its payloads weigh one reference request on every route", () => {
  for (const route of ["/v1/completions", "/v1/chat/completions", ...EXTRA]) {
    const c = configOf({ BENCHMARK_ROUTE: route });
    const benched = c.handlers.filter((h) => h.benchmark);
    assert.deepEqual(benched.map((h) => h.route), [route]);
    // Served by default even when not listed, as in Python.
    assert.ok(c.handlers.some((h) => h.route === "/v1/chat/completions"));
    const b = benched[0].benchmark!;
    const units = workload(c, route)(b.generator!());
    // "About" chars long, as Python's _words: the last space is not sent.
    assert.ok(units >= 495 && units < 530, `${route}: ${units}`);
  }
  const speech = configOf({
    BENCHMARK_ROUTE: "/v1/audio/speech",
    BENCHMARK_SPEECH_VOICE: "alloy",
    MODEL_NAME: "m",
  });
  const bench = speech.handlers.find((h) => h.benchmark)!.benchmark!;
  assert.deepEqual([bench.concurrency, bench.runs], [4, 2]);
  const payload = bench.generator!();
  assert.equal(payload.voice, "alloy");
  assert.equal(payload.model, "m");
  const images = configOf({ BENCHMARK_ROUTE: "/v1/images/generations" })
    .handlers.find((h) => h.benchmark)!.benchmark!;
  assert.deepEqual([images.concurrency, images.runs], [2, 1]);
  const sized = configOf({
    BENCHMARK_ROUTE: "/v1/images/generations",
    BENCHMARK_RUNS: "5",
  }).handlers.find((h) => h.benchmark)!.benchmark!;
  assert.equal(sized.runs, 5);
  // BENCHMARK_EMBED_CHARS sizes the embeddings benchmark and its reference.
  const embed = configOf({
    BENCHMARK_ROUTE: "/v1/embeddings",
    BENCHMARK_EMBED_CHARS: "300",
  });
  const input = embed.handlers.find((h) => h.benchmark)!.benchmark!
    .generator!().input as string;
  // Words up to 300 characters counted with their spaces; the last space
  // is not sent, so 299 is as long as 300.
  assert.ok(input.length >= 299 && input.length < 320, String(input.length));
  assert.equal(
    workload(embed, "/v1/embeddings")({ input: "e".repeat(300) }),
    500,
  );
});

Deno.test("bad OPENAI_ROUTES, BENCHMARK_ROUTE or BENCHMARK_EMBED_CHARS are errors naming the variable", () => {
  const cases: [EnvVars, RegExp][] = [
    [
      { OPENAI_ROUTES: "/v1/completions,/v1/nope" },
      /OPENAI_ROUTES: unknown route "\/v1\/nope"; expected one of \/v1\/completions, /,
    ],
    [
      { OPENAI_ROUTES: "/v1/completions,/v1/audio/transcriptions" },
      /OPENAI_ROUTES: \/v1\/audio\/transcriptions is an upload route/,
    ],
    [
      { BENCHMARK_ROUTE: "/v1/models" },
      /BENCHMARK_ROUTE: unknown route "\/v1\/models"/,
    ],
    [
      { BENCHMARK_ROUTE: "/v1/videos/sync" },
      /BENCHMARK_ROUTE: \/v1\/videos\/sync is an upload route/,
    ],
    [
      { OPENAI_ROUTES: "/v1/chat/completions" },
      /OPENAI_ROUTES: leaves out the benchmark route \/v1\/completions/,
    ],
    [
      { BENCHMARK_EMBED_CHARS: "lots" },
      /BENCHMARK_EMBED_CHARS: expected a positive whole number, got "lots"/,
    ],
    [{ BENCHMARK_EMBED_CHARS: "0" }, /BENCHMARK_EMBED_CHARS/],
  ];
  for (const [env, message] of cases) {
    assert.throws(() => findPreset("sglang")!.config(env), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, message);
      assert.match(e.message, /preset sglang/);
      return true;
    }, JSON.stringify(env));
  }
  // Listing the benchmark route with BENCHMARK_ROUTE is fine.
  const ok = configOf({
    OPENAI_ROUTES: "/v1/rerank",
    BENCHMARK_ROUTE: "/v1/rerank",
  });
  assert.deepEqual(ok.handlers.map((h) => h.route), ["/v1/rerank"]);
});

Deno.test("a worker with OPENAI_ROUTES and BENCHMARK_ROUTE benchmarks rerank, serves rerank and score with their workloads, and 404s the rest", async () => {
  const up = startUpstream({
    script: ({ path }) =>
      path === "/v1/rerank" || path === "/v1/score"
        ? Response.json({ results: [], path })
        : undefined,
  });
  const w = await startWorker((env) => findPreset("vllm")!.config(env), {
    MODEL_SERVER_URL: up.url,
    // Never written: readiness is the health check.
    MODEL_LOG: "/nonexistent/edgeworker-test/model.log",
    READINESS: "healthcheck",
    OPENAI_ROUTES: "/v1/rerank,/v1/score,/v1/completions",
    BENCHMARK_ROUTE: "/v1/rerank",
    BENCHMARK_RUNS: "1",
    BENCHMARK_CONCURRENCY: "2",
  });
  try {
    await waitFor(() => w.lifecycle.ready, 5000, "ready");
    // Warm-up plus one round of two, all on the benchmark route.
    assert.deepEqual(
      up.calls.filter((c) => c.method === "POST").map((c) => c.path),
      ["/v1/rerank", "/v1/rerank", "/v1/rerank"],
    );
    const docs = Array.from({ length: 16 }, () => "d".repeat(250));
    const rerank = await post(
      w.url,
      "/v1/rerank",
      envelope({ query: "q".repeat(60), documents: docs }),
    );
    assert.deepEqual(await rerank.json(), { results: [], path: "/v1/rerank" });
    const score = await post(
      w.url,
      "/v1/score",
      envelope({ queries: "q".repeat(60), items: docs.slice(0, 4) }),
    );
    assert.equal(score.status, 200);
    await score.body?.cancel();
    const speech = await post(w.url, "/v1/audio/speech", envelope({}));
    assert.equal(speech.status, 404);
    await speech.body?.cancel();
    await waitFor(() => w.ledger.inFlightCount === 0);
    assert.deepEqual(
      w.ledger.pendingFinished().map((r) => [r.route, r.workload]),
      [["/v1/rerank", 500], ["/v1/score", 125]],
    );
  } finally {
    await w.stop();
    await up.close();
  }
});

Deno.test("speech references must be http(s) URLs or data: URIs, never a path on the instance", () => {
  const c = configOf({
    OPENAI_ROUTES: "/v1/completions,/v1/audio/speech,/v1/audio/speech/batch",
  });
  const parser = (route: string) =>
    c.handlers.find((h) => h.route === route)!.requestParser!;
  const speech = parser("/v1/audio/speech");
  assert.deepEqual(
    speech({ input: { input: "hi", ref_audio: "https://x/a.wav" } }),
    { input: "hi", ref_audio: "https://x/a.wav" },
  );
  assert.deepEqual(speech({ input: "hi", ref_audio: "" }), { input: "hi" });
  assert.deepEqual(
    speech({ input: "hi", ref_audio: "data:audio/wav;base64,AAAA" }).ref_audio,
    "data:audio/wav;base64,AAAA",
  );
  for (
    const bad of [
      { ref_audio: "/etc/passwd" },
      { ref_audio: ["https://ok", "file:///etc/passwd"] },
      { references: [{ audio_path: "/root/a.wav" }] },
      { ref_audio_2: 7 },
    ]
  ) {
    assert.throws(() => speech({ input: "hi", ...bad }), /ref_audio: must be/);
  }
  const batch = parser("/v1/audio/speech/batch");
  assert.throws(
    () => batch({ items: "x" }),
    /items: must be a list of objects/,
  );
  assert.throws(
    () => batch({ items: [{ input: "a", ref_audio: "../a.wav" }] }),
    /ref_audio: must be an http\(s\) URL or a data: URI/,
  );
  assert.deepEqual(batch({ items: [{ input: "a" }], ref_audio: "" }), {
    items: [{ input: "a" }],
  });
});

Deno.test("the generation canary asks a route OPENAI_ROUTES serves: completions, else chat, else none", () => {
  const both = configOf({});
  assert.equal(both.canary?.route, "/v1/completions");
  assert.equal(both.canary?.payload.max_tokens, 1);
  const chat = configOf({
    OPENAI_ROUTES: "/v1/chat/completions",
    BENCHMARK_ROUTE: "/v1/chat/completions",
  });
  assert.equal(chat.canary?.route, "/v1/chat/completions");
  assert.deepEqual(chat.canary?.payload.messages, [
    { role: "user", content: "Hello" },
  ]);
  assert.equal(chat.canary?.payload.max_tokens, 1);
  const rerank = configOf({
    OPENAI_ROUTES: "/v1/rerank",
    BENCHMARK_ROUTE: "/v1/rerank",
  });
  assert.equal(rerank.canary, undefined);
});
