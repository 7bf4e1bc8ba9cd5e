/**
 * `reqnum`/`request_idx` as Python sends them, through a real worker: legacy
 * signatures over integers beyond 2^53 verify, and the exact digits go back to
 * the autoscaler; in the `any` format an unsigned reqnum never moves the
 * legacy replay window.
 */
import assert from "node:assert/strict";
import type { WorkerConfig } from "../lib/config/schemas.ts";
import {
  generateKeys,
  signText,
  signUrl,
  writePubkeyFile,
} from "./helpers/signing.ts";
import {
  post,
  type Running,
  waitFor,
  withUpstreamWorker,
} from "./helpers/worker.ts";
import type { UpstreamHandle } from "./helpers/upstream.ts";

const KEYS = await generateKeys();
const URL_ = "https://203.0.113.5:41234";
const HANDLERS: WorkerConfig["handlers"] = [
  { route: "/slow", allowParallelRequests: true, workload: () => 10 },
  { route: "/echo", allowParallelRequests: true, workload: () => 10 },
];

/** A `REPORT_ADDR` that keeps the raw text of every report (JSON.parse would round big ints). */
function startRawRecorder() {
  const texts = { status: [] as string[], delete: [] as string[] };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      const text = await req.text();
      if (path === "/worker_status/") texts.status.push(text);
      if (path === "/delete_requests/") texts.delete.push(text);
      return Response.json({});
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    texts,
    close: () => server.shutdown(),
  };
}

async function withWorker(
  env: Record<string, string>,
  fn: (w: Running, up: UpstreamHandle) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-numbers-" });
  try {
    await withUpstreamWorker(HANDLERS, fn, {
      UNSECURED: "false",
      EDGEWORKER_PUBKEY_FILE: await writePubkeyFile(dir, KEYS.publicPem),
      ...env,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A body with `auth_data` numbers written as given, legacy-signed over exactly those digits. */
async function legacyBody(
  reqnum: string,
  requestIdx: string,
  payload: string,
): Promise<string> {
  const message = `{
    "cost": 1000.0,
    "endpoint": "ep",
    "reqnum": ${reqnum},
    "request_idx": ${requestIdx},
    "url": "${URL_}"
}`;
  const signature = await signText(KEYS.privateKey, message);
  return `{"auth_data": {"__request_id": "r1", "cost": 1000.0, ` +
    `"endpoint": "ep", "reqnum": ${reqnum}, "request_idx": ${requestIdx}, ` +
    `"signature": "${signature}", "url": "${URL_}"}, ` +
    `"payload": ${payload}, "session_id": null}`;
}

Deno.test("legacy: reqnum 2^60+1 and request_idx 2^63 verify, are served, and the exact digits are reported", async () => {
  const reqnum = (2n ** 60n + 1n).toString();
  const idx = (2n ** 63n).toString(); // 9223372036854775808
  const cp = startRawRecorder();
  try {
    await withWorker({
      EDGEWORKER_SIGNATURE_FORMAT: "legacy",
      REPORT_ADDR: cp.url,
      CONTAINER_ID: "7",
      MASTER_TOKEN: "tok",
    }, async (w, up) => {
      const body = await legacyBody(reqnum, idx, `{"delay_ms": 800}`);
      let answer: Response | undefined;
      const pending = post(w.url, "/slow", body).then((r) => (answer = r));
      // While it runs, /worker_status/ lists it with every digit.
      const listed = () =>
        cp.texts.status.some((t) =>
          t.includes(`"working_request_idxs":[${idx}]`)
        );
      await waitFor(() => listed() || answer !== undefined, 3000, "status");
      assert.ok(
        listed(),
        `answered ${answer?.status} ${await answer
          ?.text()} before any status listed it`,
      );
      const status = await fetch(`${w.url}/status`);
      assert.equal(status.status, 200, "/status copes with the big index");
      await status.body?.cancel();
      const res = await pending;
      assert.equal(res.status, 200, await res.clone().text());
      assert.deepEqual(await res.json(), { seq: null });
      assert.equal(up.bodies.length, 1);
      await waitFor(
        () => cp.texts.delete.some((t) => t.includes(`"request_idx":${idx},`)),
        3000,
        "delete_requests with the exact request_idx",
      );
    });
  } finally {
    await cp.close();
  }
});

Deno.test("legacy: a negative reqnum and a non-integral request_idx are accepted as Python accepts them", async () => {
  await withWorker({ EDGEWORKER_SIGNATURE_FORMAT: "legacy" }, async (w) => {
    const res = await post(
      w.url,
      "/echo",
      await legacyBody("-5", "12.5", `{"n": 1}`),
    );
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), { received: { n: 1 } });
    const [rec] = w.ledger.pendingFinished();
    assert.equal(rec.requestIdx, 12.5);
    assert.equal(rec.reqnum, -5);
  });
});

Deno.test("format any: a url-signed request with reqnum 2^53-1 does not lock legacy requests out", async () => {
  await withWorker({ EDGEWORKER_SIGNATURE_FORMAT: "any" }, async (w, up) => {
    const signature = await signUrl(KEYS.privateKey, URL_);
    const forged = `{"auth_data": {"cost": 1, "endpoint": "ep", ` +
      `"reqnum": ${2 ** 53 - 1}, "request_idx": 1, ` +
      `"signature": "${signature}", "url": "${URL_}"}, "payload": {"n": 1}}`;
    const first = await post(w.url, "/echo", forged);
    assert.equal(first.status, 200, await first.clone().text());
    await first.body?.cancel();
    const legacy = await post(
      w.url,
      "/echo",
      await legacyBody("42", "2", `{"n": 2}`),
    );
    assert.equal(legacy.status, 200, await legacy.clone().text());
    await legacy.body?.cancel();
    assert.deepEqual(up.bodies, [{ n: 1 }, { n: 2 }]);
  });
});
