/**
 * End to end, SGLang's slow `/health` (a one-token generation, up to 20 s):
 * `main.ts run --preset sglang` against the OpenAI stand-in in its SGLang
 * flavor with a 12 s `/health`. With `HEALTHCHECK_PROBE_TIMEOUT=20` the
 * worker becomes ready and stays so through the next probe; with 5 it
 * keeps waiting (loading, never an error), as the Python worker does
 * before its first healthy probe.
 */
import assert from "node:assert/strict";
import { startOpenAiServer } from "../../dev/openai_server.ts";
import { allScenarios, inTempDir } from "./_presets.ts";
import { waitFor } from "../helpers/http.ts";

const MODEL = "Qwen/Qwen3-0.6B";
const HEALTH_SECONDS = 12;

async function readyState(base: string): Promise<[number, string]> {
  const r = await fetch(`${base}/ready`);
  const body = await r.json();
  return [r.status, body.state];
}

function slowHealth(probeTimeout: string, healthy: boolean): Promise<void> {
  return inTempDir(`sglang-health-${probeTimeout}`, async (ctx) => {
    const logFile = `${ctx.dir}/engine.log`;
    const llm = await startOpenAiServer({
      logFile,
      flavor: "sglang",
      model: MODEL,
      tokensPerSecond: 5000,
      healthSeconds: HEALTH_SECONDS,
    });
    ctx.defer(() => llm.close());
    const w = await ctx.startAgainst(llm.url, logFile, "sglang", {
      SGLANG_MODEL: MODEL,
      HEALTHCHECK_PROBE_TIMEOUT: probeTimeout,
    });
    if (!healthy) {
      // Probes that give up after 5 s never see the 12 s answer.
      await waitFor(() => llm.healthChecks >= 2, 30_000, "two probes");
      assert.deepEqual(await readyState(w.base), [503, "loading"]);
      return;
    }
    await w.waitReady(60_000);
    const first = llm.healthChecks;
    // The monitor's next probe (10 s after the last) takes 12 s too.
    await waitFor(
      () => llm.healthChecks > first,
      30_000,
      "the monitor's probe",
    );
    await new Promise((r) => setTimeout(r, (HEALTH_SECONDS + 1) * 1000));
    await w.assertReady();
    assert.deepEqual(await readyState(w.base), [200, "ready"]);
  });
}

Deno.test("SGLang's 12 s /health: ready and staying so with HEALTHCHECK_PROBE_TIMEOUT=20; still loading (no error) with 5", async () => {
  await allScenarios([slowHealth("20", true), slowHealth("5", false)]);
});
