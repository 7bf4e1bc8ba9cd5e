/**
 * Each preset's canary request, sent to the stand-in of its model server
 * (real routes and answer shapes), is a well-formed answer: a preset whose
 * canary named a field the engine never sends would make every worker of
 * that preset not ready. Generation that hangs fails it at its deadline.
 */
import assert from "node:assert/strict";
import { startHelloWorldServer } from "../dev/hello_world_server.ts";
import { startOpenAiServer } from "../dev/openai_server.ts";
import { startTgiServer } from "../dev/tgi_server.ts";
import { parseWorkerConfig } from "../lib/config/file.ts";
import type { ResolvedCanaryConfig } from "../lib/config/schemas.ts";
import { sendCanary } from "../lib/model/canary.ts";
import { ModelClient } from "../lib/model/model_client.ts";
import { findPreset } from "../workers/mod.ts";

function canaryOf(
  preset: string,
  url: string,
): { canary: ResolvedCanaryConfig; url: string } {
  const config = parseWorkerConfig(
    findPreset(preset)!.config({ MODEL_SERVER_URL: url }),
  );
  const canary = config.canary;
  assert.ok(canary, `${preset} has a canary`);
  assert.equal(canary.idleSeconds, 120);
  return { canary, url: url + canary.route };
}

for (const flavor of ["vllm", "sglang", "llama_cpp"] as const) {
  Deno.test(`canary presets: ${flavor}'s canary passes against the stand-in, and fails at its deadline when generation hangs`, async () => {
    await using llm = await startOpenAiServer({ flavor });
    using client = new ModelClient();
    const { canary, url } = canaryOf(flavor, llm.url);
    const never = new AbortController().signal;
    assert.deepEqual(await sendCanary(client, url, canary, 5000, never), {
      ok: true,
    });
    assert.equal((llm.lastBody as { max_tokens: number }).max_tokens, 1);
    llm.setGenerationHangs(true);
    assert.deepEqual(await sendCanary(client, url, canary, 200, never), {
      ok: false,
      reason: "no answer within 0.2 s",
    });
    llm.setGenerationHangs(false);
  });
}

Deno.test("canary presets: tgi's and hello_world's canaries pass against their stand-ins", async () => {
  const never = new AbortController().signal;
  using client = new ModelClient();
  await using tgi = await startTgiServer();
  const t = canaryOf("tgi", tgi.url);
  assert.deepEqual(await sendCanary(client, t.url, t.canary, 5000, never), {
    ok: true,
  });
  await using hello = await startHelloWorldServer();
  const h = canaryOf("hello_world", hello.url);
  assert.deepEqual(await sendCanary(client, h.url, h.canary, 5000, never), {
    ok: true,
  });
});

Deno.test("canary presets: an answer without the expected field fails, naming it", async () => {
  await using llm = await startOpenAiServer();
  using client = new ModelClient();
  const { canary, url } = canaryOf("vllm", llm.url);
  const never = new AbortController().signal;
  const result = await sendCanary(
    client,
    url,
    { ...canary, expectField: "choices.9" },
    5000,
    never,
  );
  assert.deepEqual(result, { ok: false, reason: "answer has no choices.9" });
  const notFound = await sendCanary(
    client,
    llm.url + "/v1/nowhere",
    canary,
    5000,
    never,
  );
  assert.ok("reason" in notFound && /^HTTP 404: /.test(notFound.reason));
});
