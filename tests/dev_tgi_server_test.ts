import assert from "node:assert/strict";
import { startTgiServer } from "../dev/tgi_server.ts";
import { health, tempLog, waitForLog } from "./helpers/dev.ts";
import { post, readEvents, waitFor } from "./helpers/http.ts";

async function gauge(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\d+)$`, "m"));
  assert.ok(m, `${name} missing`);
  return Number(m[1]);
}

Deno.test("tgi stand-in streams token events at the set rate, generated_text last", async () => {
  await using tgi = await startTgiServer({ tokensPerSecond: 50 });
  const t0 = performance.now();
  const res = await post(tgi.url, "/generate_stream", {
    inputs: "What is deep learning?",
    parameters: { max_new_tokens: 10 },
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  const events = await readEvents(res);
  assert.equal(events.length, 10);
  // TGI writes no space after `data:`.
  assert.ok(events.every((e) => e.raw.startsWith("data:{")));
  const parsed = events.map((e) => JSON.parse(e.data));
  assert.deepEqual(Object.keys(parsed[0].token).sort(), [
    "id",
    "logprob",
    "special",
    "text",
  ]);
  assert.equal(parsed[0].index, 1);
  assert.equal(parsed[0].generated_text, null);
  assert.equal(parsed[0].details, null);
  // TGI leaves out an empty top_tokens (no top_n_tokens asked for).
  assert.deepEqual(Object.keys(parsed[0]), [
    "index",
    "token",
    "generated_text",
    "details",
  ]);
  assert.ok(parsed.every((p) => !("top_tokens" in p)));
  const last = parsed[9];
  assert.equal(last.generated_text, parsed.map((p) => p.token.text).join(""));
  assert.equal(last.details.finish_reason, "length");
  assert.equal(last.details.generated_tokens, 10);
  const gaps = events.slice(1).map((e, i) => e.at - events[i].at);
  const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
  assert.ok(mean > 8 && mean < 60, `mean gap ${mean} ms`);
  assert.ok(events[9].at - t0 >= 190, "tokens arrived too fast");
});

Deno.test("tgi stand-in /generate returns generated_text, details on request", async () => {
  await using tgi = await startTgiServer({ tokensPerSecond: 1000 });
  const plain = await post(tgi.url, "/generate", {
    inputs: "Hi",
    parameters: { max_new_tokens: 3 },
  });
  assert.equal(plain.headers.get("x-generated-tokens"), "3");
  const body = await plain.json();
  assert.deepEqual(Object.keys(body), ["generated_text"]);
  assert.equal(body.generated_text.trim().split(" ").length, 3);
  const req = {
    inputs: "Hi",
    parameters: { max_new_tokens: 4, details: true },
  };
  const detailed = await (await post(tgi.url, "/generate", req)).json();
  assert.equal(detailed.details.generated_tokens, 4);
  assert.equal(detailed.details.tokens.length, 4);
  assert.deepEqual(tgi.lastBody, req);
  assert.equal(tgi.requests, 2);
  const info = await (await fetch(`${tgi.url}/info`)).json();
  assert.equal(typeof info.model_id, "string");
  assert.equal(info.max_total_tokens, 2048);
});

Deno.test("tgi stand-in validates like TGI's router", async () => {
  await using tgi = await startTgiServer();
  const empty = await post(tgi.url, "/generate", { inputs: "" });
  assert.equal(empty.status, 422);
  assert.deepEqual(await empty.json(), {
    error: "Input validation error: `inputs` cannot be empty",
    error_type: "validation",
  });
  const zero = await post(tgi.url, "/generate", {
    inputs: "x",
    parameters: { max_new_tokens: 0 },
  });
  assert.equal(zero.status, 422);
  assert.match(
    (await zero.json()).error,
    /max_new_tokens` must be strictly positive/,
  );
  const long = await post(tgi.url, "/generate", {
    inputs: "x",
    parameters: { max_new_tokens: 4000 },
  });
  assert.equal((await long.json()).error_type, "validation");
  const missing = await post(tgi.url, "/generate", { parameters: {} });
  assert.equal(missing.status, 422);
  assert.match(await missing.text(), /missing field `inputs`/);
  const noType = await fetch(`${tgi.url}/generate`, {
    method: "POST",
    body: '{"inputs":"x"}',
  });
  assert.equal(noType.status, 415);
  await noType.body?.cancel();
});

Deno.test("tgi stand-in logs JSON lines up to Connected, health follows", async () => {
  await using logFile = await tempLog();
  await using tgi = await startTgiServer({
    logFile: logFile.path,
    startupDelayMs: 150,
  });
  assert.deepEqual(await health(tgi.url), {
    status: 503,
    body: { error: "unhealthy", error_type: "healthcheck" },
  });
  assert.match(await Deno.readTextFile(logFile.path), /"message":"Download/);
  const connected =
    '"message":"Connected","target":"text_generation_router::server"';
  await waitForLog(logFile.path, connected);
  const lines = (await Deno.readTextFile(logFile.path)).trim().split("\n");
  for (const line of lines) {
    const entry = JSON.parse(line);
    assert.equal(typeof entry.timestamp, "string");
    assert.ok(["INFO", "WARN"].includes(entry.level));
  }
  assert.equal((await health(tgi.url)).status, 200);
});

Deno.test("tgi stand-in counts aborted streams and reports its queue in /metrics", async () => {
  await using tgi = await startTgiServer({
    tokensPerSecond: 100,
    maxBatchSize: 1,
  });
  const ctrl = new AbortController();
  const res = await post(tgi.url, "/generate_stream", {
    inputs: "x",
    parameters: { max_new_tokens: 100 },
  }, { signal: ctrl.signal });
  const queued = post(tgi.url, "/generate", {
    inputs: "y",
    parameters: { max_new_tokens: 2 },
  });
  await waitFor(async () => await gauge(tgi.url, "tgi_queue_size") === 1, 1000);
  assert.equal(await gauge(tgi.url, "tgi_batch_current_size"), 1);
  await readEvents(res, 2);
  ctrl.abort();
  await waitFor(() => tgi.aborted === 1, 1000);
  const done = await queued;
  assert.equal(done.status, 200);
  await done.json();
  assert.equal(await gauge(tgi.url, "tgi_queue_size"), 0);
});

Deno.test("tgi stand-in failures: overload 429, errorRate 424, crash and ShardCannotStart", async () => {
  await using logFile = await tempLog();
  {
    await using tgi = await startTgiServer({
      logFile: logFile.path,
      tokensPerSecond: 100,
      maxConcurrentRequests: 1,
    });
    const first = post(tgi.url, "/generate", {
      inputs: "x",
      parameters: { max_new_tokens: 50 },
    });
    await waitFor(
      async () => await gauge(tgi.url, "tgi_batch_current_size") === 1,
      1000,
    );
    const over = await post(tgi.url, "/generate", { inputs: "x" });
    assert.equal(over.status, 429);
    assert.deepEqual(await over.json(), {
      error: "Model is overloaded",
      error_type: "overloaded",
    });
    await tgi.crash();
    const killed = await first;
    assert.equal(killed.status, 424);
    assert.equal((await killed.json()).error_type, "generation");
    const log = await Deno.readTextFile(logFile.path);
    assert.match(log, /^Error: WebserverFailed$/m);
    await assert.rejects(fetch(`${tgi.url}/health`), TypeError);
  }
  {
    await using flaky = await startTgiServer({ failures: { errorRate: 1 } });
    const r = await post(flaky.url, "/generate", { inputs: "x" });
    assert.equal(r.status, 424);
    assert.match((await r.json()).error, /^Request failed during generation/);
  }
  await Deno.writeTextFile(logFile.path, "");
  await using _broken = await startTgiServer({
    logFile: logFile.path,
    failures: { failStartup: true },
  });
  await waitForLog(logFile.path, "Error: ShardCannotStart");
  assert.doesNotMatch(
    await Deno.readTextFile(logFile.path),
    /"message":"Connected"/,
  );
});

Deno.test("tgi stand-in in text mode (no --json-output) prints the router's text Connected line", async () => {
  await using logFile = await tempLog();
  await using _tgi = await startTgiServer({
    logFile: logFile.path,
    logFormat: "text",
  });
  await waitForLog(logFile.path, "Connected");
  const log = await Deno.readTextFile(logFile.path);
  assert.match(
    log,
    /^\d{4}-\d\d-\d\dT[\d:.]+Z {2}INFO text_generation_router::server: router\/src\/server\.rs:2302: Connected$/m,
  );
  assert.match(
    log,
    /^\S+Z {2}INFO shard-manager: text_generation_launcher: Starting shard$/m,
  );
  assert.doesNotMatch(log, /^\{/m);
});
