/**
 * What `deno task dev` promises: the route-then-request commands it prints
 * work as printed (run here with bash and curl), with real signatures; the
 * control plane routes to the worker once its ready report came; the
 * worker's dashboard opens with the printed token.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startDemo } from "../../dev/demo.ts";

Deno.test("the demo becomes ready and its printed request streams an answer", async () => {
  const dir = await Deno.makeTempDir();
  const demo = await startDemo({ workerPort: 0, tokensPerSecond: 2000, dir });
  try {
    assert.equal(await demo.ready, "ready");
    assert.equal(demo.workers.length, 1);
    assert.match(demo.instructions, new RegExp(`${demo.controlPlaneUrl}/ `));
    assert.match(
      demo.instructions,
      new RegExp(`worker 1: +${demo.workerUrl} `),
    );
    // The copy-paste block, run as a person would.
    const lines = demo.instructions.split("\n");
    const start = lines.findIndex((l) => l.trimStart().startsWith("AUTH="));
    const end = lines.findIndex((l, i) => i > start && l.trim() === "");
    const script = lines.slice(start, end).map((l) => l.trim()).join("\n");
    assert.match(script, /curl -N "\$URL\/v1\/chat\/completions"/);
    const run = await new Deno.Command("bash", {
      args: ["-euo", "pipefail", "-c", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const streamed = new TextDecoder().decode(run.stdout);
    assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
    assert.match(streamed, /"object":"chat\.completion\.chunk"/);
    assert.match(streamed, /data: \[DONE\]/);

    const auth = await (await fetch(`${demo.controlPlaneUrl}/route/`, {
      method: "POST",
      body: JSON.stringify({ endpoint: "demo", api_key: "demo", cost: 100 }),
    })).json();
    assert.equal(auth.url, demo.workerUrl);
    const forged = await fetch(`${demo.workerUrl}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({
        auth_data: { ...auth, url: "http://elsewhere:1" },
        payload: { messages: [] },
      }),
    });
    assert.equal(forged.status, 401);
    await forged.body?.cancel();

    const [, token] = demo.instructions.match(/dashboard\?token=(\S+)\)/)!;
    const dash = await fetch(`${demo.workerUrl}/dashboard/data`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(dash.status, 200);
    const view = await dash.json();
    assert.equal(view.workers[0].state, "ready");
    assert.ok(
      view.requests.some((r: { outcome: string }) => r.outcome === "Success"),
      "the printed request is on the worker's dashboard",
    );
  } finally {
    await demo.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the demo refuses a worker count below 1", async () => {
  await assert.rejects(
    startDemo({ workers: 0 }),
    /workers must be an integer >= 1, got 0/,
  );
});
