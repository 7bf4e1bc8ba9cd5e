/**
 * `GET /dashboard` on a real worker: off unless `EDGEWORKER_DASHBOARD=true`
 * (404), behind `MASTER_TOKEN` (401 without it, 403 with an empty one),
 * and its data, polled by the page, follows the ledger: the requests just
 * served appear with their outcome, and the chart's throughput rises.
 *
 * @module
 */
import assert from "node:assert/strict";
import { assertEnvRefused } from "./helpers/env.ts";
import { readEnv } from "../lib/config/env.ts";
import { post, waitFor } from "./helpers/http.ts";
import { envelope, withUpstreamWorker } from "./helpers/worker.ts";

const TOKEN = "dash-token-0123456789";
const HANDLERS = [{ route: "/echo", allowParallelRequests: true }];

async function get(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; type: string; text: string }> {
  const res = await fetch(url, { headers });
  return {
    status: res.status,
    type: res.headers.get("content-type") ?? "",
    text: await res.text(),
  };
}

Deno.test("the dashboard is off by default: 404, even with the token", async () => {
  await withUpstreamWorker(HANDLERS, async (w) => {
    for (const path of ["/dashboard", "/dashboard/data"]) {
      const res = await get(`${w.url}${path}`, {
        authorization: `Bearer ${TOKEN}`,
      });
      assert.equal(res.status, 404, path);
      assert.deepEqual(JSON.parse(res.text), { error: `no route ${path}` });
    }
  }, { MASTER_TOKEN: TOKEN });
});

Deno.test("with EDGEWORKER_DASHBOARD=true the page needs MASTER_TOKEN (401 without, 200 with)", async () => {
  await withUpstreamWorker(HANDLERS, async (w) => {
    for (const path of ["/dashboard", "/dashboard/data"]) {
      for (
        const headers of [
          {},
          { authorization: "Bearer wrong" },
          { authorization: TOKEN.slice(0, -1) },
        ] as Record<string, string>[]
      ) {
        const res = await get(`${w.url}${path}`, headers);
        assert.equal(res.status, 401, `${path} ${JSON.stringify(headers)}`);
        assert.match(
          JSON.parse(res.text).error,
          /^unauthorized: .*MASTER_TOKEN/,
        );
      }
      const wrongQuery = await get(`${w.url}${path}?token=nope`);
      assert.equal(wrongQuery.status, 401);
    }
    const page = await get(`${w.url}/dashboard`, {
      authorization: `Bearer ${TOKEN}`,
    });
    assert.equal(page.status, 200);
    assert.equal(page.type, "text/html; charset=utf-8");
    assert.match(page.text, /<svg id="chart"/);
    assert.match(page.text, /"dataUrl":"dashboard\/data"/);
    assert.doesNotMatch(page.text, /<script[^>]+src=|<link[^>]+href=/);
    const wrongMethod = await fetch(`${w.url}/dashboard`, { method: "POST" });
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get("allow"), "GET");
    await wrongMethod.body?.cancel();
    const byQuery = await get(`${w.url}/dashboard?token=${TOKEN}`);
    assert.equal(byQuery.status, 200);
    assert.equal(byQuery.text, page.text);
  }, { MASTER_TOKEN: TOKEN, EDGEWORKER_DASHBOARD: "true" });
});

Deno.test("an empty MASTER_TOKEN keeps the dashboard shut (403)", async () => {
  await withUpstreamWorker(HANDLERS, async (w) => {
    const res = await get(`${w.url}/dashboard`, { authorization: "Bearer " });
    assert.equal(res.status, 403);
    assert.match(JSON.parse(res.text).error, /MASTER_TOKEN is empty/);
  }, { EDGEWORKER_DASHBOARD: "true" });
});

Deno.test("dashboard data: state, max_perf, the requests served and the throughput, from the ledger", async () => {
  await withUpstreamWorker(HANDLERS, async (w) => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const data = async () =>
      JSON.parse((await get(`${w.url}/dashboard/data`, auth)).text);
    const before = await data();
    assert.equal(before.workers.length, 1);
    assert.equal(before.workers[0].state, "ready");
    assert.equal(before.workers[0].id, 7);
    assert.equal(typeof before.workers[0].maxPerf, "number");
    assert.deepEqual(before.requests, []);
    assert.ok(before.series.length >= 100, "two minutes of points");
    assert.ok(
      before.series.every((p: { throughput: number }) => p.throughput === 0),
    );

    for (let i = 1; i <= 3; i++) {
      const res = await post(
        w.url,
        "/echo",
        envelope({ prompt: "hi", max_tokens: 3 }, { request_idx: 40 + i }),
      );
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    const bad = await post(w.url, "/echo", "{not json");
    await bad.body?.cancel();
    await waitFor(() => w.ledger.inFlightCount === 0, 3000, "all done");
    const after = await data();
    const byIdx = new Map(
      after.requests.map((r: { requestIdx: string }) => [r.requestIdx, r]),
    );
    for (const idx of ["41", "42", "43"]) {
      const r = byIdx.get(idx) as Record<string, unknown>;
      assert.ok(r, `request ${idx} listed`);
      assert.equal(r.outcome, "Success");
      assert.equal(r.route, "/echo");
      assert.equal(r.worker, 7);
      assert.ok((r.workSeconds as number) >= 0);
    }
    assert.equal(after.requests[0].requestIdx, "43", "newest first");
    const peak = Math.max(
      ...after.series.map((p: { throughput: number }) => p.throughput),
    );
    assert.ok(peak > 0, "the chart's throughput rose");
    assert.equal(after.workers[0].load, 0);
    assert.equal(after.facts.received, 3);
  }, { MASTER_TOKEN: TOKEN, EDGEWORKER_DASHBOARD: "true", CONTAINER_ID: "7" });
});

Deno.test("EDGEWORKER_DASHBOARD takes true or false only", () => {
  assert.equal(readEnv({}).EDGEWORKER_DASHBOARD, false);
  assert.equal(
    readEnv({ EDGEWORKER_DASHBOARD: "true" }).EDGEWORKER_DASHBOARD,
    true,
  );
  assertEnvRefused({ EDGEWORKER_DASHBOARD: "maybe" }, "EDGEWORKER_DASHBOARD");
});
