import assert from "node:assert/strict";
import OpenAI from "openai";
import { edgeworkerFetch } from "../../client.ts";
import { startDemo } from "../../dev/demo.ts";

// The whole path a user of the official `openai` package takes: the
// adapter asks the control plane for a signed route, the worker verifies
// it, forwards to the vLLM stand-in and relays (or streams) the answer.
Deno.test("the openai package works through edgeworkerFetch, the control plane and a real worker", async () => {
  const dir = await Deno.makeTempDir();
  // A cached benchmark: the slow stand-in (to see streaming) would take
  // seconds to benchmark.
  await Deno.writeTextFile(`${dir}/.has_benchmark`, "1000.0");
  const demo = await startDemo({ workerPort: 0, tokensPerSecond: 40, dir });
  try {
    assert.equal(await demo.ready, "ready");
    const openai = new OpenAI({
      baseURL: "http://edgeworker.invalid/v1",
      apiKey: "unused",
      maxRetries: 0,
      fetch: edgeworkerFetch({
        routeUrl: demo.controlPlaneUrl,
        endpoint: "demo",
        apiKey: "demo",
      }),
    });

    const chat = await openai.chat.completions.create({
      model: "demo-model",
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: 4,
    });
    assert.equal(chat.object, "chat.completion");
    assert.equal(chat.usage?.completion_tokens, 4);

    const arrivals: number[] = [];
    let text = "";
    const stream = await openai.chat.completions.create({
      model: "demo-model",
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: 6,
      stream: true,
    });
    for await (const chunk of stream) {
      arrivals.push(Date.now());
      text += chunk.choices[0]?.delta?.content ?? "";
    }
    assert.ok(text.length > 0);
    // 6 tokens at 40 tokens/s: chunks spread over ~150 ms, not one burst.
    assert.ok(arrivals.length >= 6);
    assert.ok(
      arrivals.at(-1)! - arrivals[0] >= 80,
      "stream arrived in one burst",
    );

    const completion = await openai.completions.create({
      model: "demo-model",
      prompt: "Say something",
      max_tokens: 3,
    });
    assert.equal(completion.object, "text_completion");

    await assert.rejects(
      openai.chat.completions.create({
        model: "demo-model",
        messages: [],
        max_tokens: -1,
      }),
      (e: unknown) => e instanceof OpenAI.APIError && e.status === 400,
    );
  } finally {
    await demo.close();
    await Deno.remove(dir, { recursive: true });
  }
});
