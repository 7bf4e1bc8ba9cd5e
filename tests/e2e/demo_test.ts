import assert from "node:assert/strict";
import { startDemo } from "../../dev/demo.ts";

// What `deno task dev` promises: the printed route-then-request flow works
// with real signatures, and the worker reports to the demo control plane.
Deno.test("the demo becomes ready and its printed request streams an answer", async () => {
  const dir = await Deno.makeTempDir();
  const demo = await startDemo({ workerPort: 0, tokensPerSecond: 2000, dir });
  try {
    assert.equal(await demo.ready, "ready");
    assert.match(
      demo.instructions,
      new RegExp(`${demo.controlPlaneUrl}/route/`),
    );
    assert.match(
      demo.instructions,
      new RegExp(`${demo.workerUrl}/v1/chat/completions`),
    );
    const route = await fetch(`${demo.controlPlaneUrl}/route/`, {
      method: "POST",
      body: JSON.stringify({ endpoint: "demo", api_key: "demo", cost: 100 }),
    });
    const auth = await route.json();
    assert.equal(auth.url, demo.workerUrl);
    const res = await fetch(`${demo.workerUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        auth_data: auth,
        payload: {
          model: "demo-model",
          stream: true,
          max_tokens: 5,
          messages: [{ role: "user", content: "Hello" }],
        },
      }),
    });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /"object":"chat\.completion\.chunk"/);
    assert.match(text, /data: \[DONE\]/);
    const forged = await fetch(`${demo.workerUrl}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({
        auth_data: { ...auth, url: "http://elsewhere:1" },
        payload: { messages: [] },
      }),
    });
    assert.equal(forged.status, 401);
    await forged.body?.cancel();
  } finally {
    await demo.close();
    await Deno.remove(dir, { recursive: true });
  }
});
