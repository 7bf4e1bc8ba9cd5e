import assert from "node:assert/strict";
import {
  legacySignatureMessage,
  startControlPlane,
  urlSignatureMessage,
} from "../dev/control_plane.ts";
import { controlPlaneKeys } from "./helpers/dev.ts";
import { AUTH_DATA_FIELDS } from "./helpers/signing.ts";
import { post, waitFor } from "./helpers/http.ts";

const keyPair = await controlPlaneKeys();

/** Verifies like a worker: import the served PEM, check the base64 signature. */
async function verify(
  pem: string,
  message: string,
  signature: string,
): Promise<boolean> {
  const b64 = pem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(
    /\s+/g,
    "",
  );
  const der = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey(
    "spki",
    der,
    { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    false,
    ["verify"],
  );
  const sig = Uint8Array.from(atob(signature), (c) => c.charCodeAt(0));
  return crypto.subtle.verify(
    "RSASSA-PKCS1-v1_5",
    key,
    sig,
    new TextEncoder().encode(message),
  );
}

Deno.test("control plane signs /route/ answers over the URL, verifiable with /pubkey/", async () => {
  const worker = "https://1.2.3.4:41234";
  await using cp = await startControlPlane({ workerUrl: worker, keyPair });
  const pemRes = await fetch(`${cp.url}/pubkey/`);
  const pem = await pemRes.text();
  assert.equal(pem, cp.publicKeyPem);
  assert.match(
    pem,
    /^-----BEGIN PUBLIC KEY-----\n([A-Za-z0-9+/=]{64}\n)+[A-Za-z0-9+/=]+\n-----END PUBLIC KEY-----\n$/,
  );
  assert.equal(cp.pubkeyFetches, 1);

  const res = await post(cp.url, "/route/", {
    endpoint: "my-endpoint",
    api_key: "k",
    cost: 256,
  });
  const raw = await res.text();
  assert.match(
    raw,
    /"cost": 256\.0/,
    "cost is a float literal, as Python sends it",
  );
  const auth = JSON.parse(raw);
  assert.deepEqual(Object.keys(auth), ["__request_id", ...AUTH_DATA_FIELDS]);
  assert.equal(auth.url, worker);
  assert.equal(auth.endpoint, "my-endpoint");
  assert.equal(auth.cost, 256);
  assert.equal(auth.signature.length, 344);
  const message = '{\n    "url": "https://1.2.3.4:41234"\n}';
  assert.equal(urlSignatureMessage(worker), message);
  assert.equal(
    urlSignatureMessage(worker),
    JSON.stringify({ url: worker }, null, 4),
  );
  assert.ok(await verify(pem, message, auth.signature));
  assert.ok(
    !await verify(
      pem,
      urlSignatureMessage("https://6.6.6.6:1"),
      auth.signature,
    ),
  );

  const again = await (await post(cp.url, "/route/", {
    endpoint: "my-endpoint",
    api_key: "k",
    cost: 1,
    request_idx: 77,
  })).json();
  assert.equal(again.reqnum, auth.reqnum + 1);
  assert.equal(again.request_idx, 77);
  assert.equal(again.signature, auth.signature, "URL-only signatures repeat");
  assert.equal(cp.routeRequests.length, 2);
  assert.equal(await cp.sign(message), auth.signature);
});

Deno.test("control plane answers 'waiting' until a worker is ready", async () => {
  await using cp = await startControlPlane({ keyPair });
  const w1 = await (await post(cp.url, "/route/", {
    endpoint: "e",
    api_key: "k",
    cost: 100,
  })).json();
  assert.deepEqual(Object.keys(w1).sort(), [
    "endpoint",
    "request_idx",
    "status",
  ]);
  assert.equal(w1.status, "waiting");
  assert.ok(w1.request_idx > 0);
  cp.setWorkerUrl("http://127.0.0.1:3000");
  cp.setReady(false);
  const w2 = await routeTo(cp, 100, w1.request_idx);
  assert.equal(w2.status, "waiting");
  assert.equal(w2.request_idx, w1.request_idx, "the queue position is kept");
  cp.setReady(true);
  const ready = await routeTo(cp, 100, w1.request_idx);
  assert.equal(ready.url, "http://127.0.0.1:3000");
  assert.equal(ready.request_idx, w1.request_idx);
});

Deno.test("control plane records worker_status and delete_requests with arrival times", async () => {
  await using cp = await startControlPlane({ keyPair });
  const before = Date.now();
  const status = {
    id: 1,
    mtoken: "t",
    version: "1.1.0",
    cur_load: 0,
    max_perf: 12.5,
    url: "http://x",
  };
  const r1 = await post(cp.url, "/worker_status/", status);
  assert.equal(r1.status, 200);
  await r1.body?.cancel();
  const del = {
    worker_id: 1,
    mtoken: "t",
    requests: [{ request_idx: 3, success: true, status: "Success" }],
  };
  const r2 = await post(cp.url, "/delete_requests/", del);
  await r2.body?.cancel();
  assert.deepEqual(cp.statusReports.map((r) => r.body), [status]);
  assert.deepEqual(cp.deleteReports.map((r) => r.body), [del]);
  assert.ok(
    cp.statusReports[0].at >= before && cp.statusReports[0].at <= Date.now(),
  );
  const found = await cp.waitFor(
    "delete",
    (b) => (b as typeof del).requests[0].request_idx === 3,
  );
  assert.equal(found, cp.deleteReports[0]);
  const later = cp.waitFor(
    "status",
    (b) => (b as { max_perf: number }).max_perf === 99,
    1000,
  );
  (await post(cp.url, "/worker_status/", { ...status, max_perf: 99 })).body
    ?.cancel();
  assert.equal(((await later).body as { max_perf: number }).max_perf, 99);
  await assert.rejects(
    cp.waitFor("route", undefined, 20),
    /no matching route/,
  );
});

Deno.test("control plane simulates an outage and a slow autoscaler", async () => {
  await using cp = await startControlPlane({ keyPair });
  cp.setStatusReply({ status: 503 });
  cp.setPubkeyReply({ status: 500 });
  const down = await post(cp.url, "/worker_status/", { id: 1 });
  assert.equal(down.status, 503);
  await down.body?.cancel();
  assert.equal(
    cp.statusReports.length,
    1,
    "a refused report is still recorded",
  );
  const key = await fetch(`${cp.url}/pubkey/`);
  assert.equal(key.status, 500);
  await key.body?.cancel();
  cp.setStatusReply(undefined);
  cp.setPubkeyReply(undefined);
  cp.setDelayMs(150);
  const sentAt = Date.now();
  const t0 = performance.now();
  const slow = await post(cp.url, "/delete_requests/", {
    worker_id: 1,
    requests: [],
  });
  await slow.body?.cancel();
  assert.ok(performance.now() - t0 >= 140, "reply was delayed");
  assert.ok(
    cp.deleteReports[0].at - sentAt < 100,
    "recorded on arrival, not on reply",
  );
  // A pending delay ends when the control plane closes.
  cp.setDelayMs(60_000);
  const t1 = performance.now();
  const pending = post(cp.url, "/worker_status/", { id: 2 });
  await cp.waitFor("status", (b) => (b as { id: number }).id === 2);
  const closed = cp.close();
  await (await pending).body?.cancel();
  await closed;
  assert.ok(performance.now() - t1 < 1000);
});

Deno.test("control plane: legacy signature format, api key check, Python string escaping", async () => {
  await using cp = await startControlPlane({
    workerUrl: "https://1.2.3.4:5",
    signatureFormat: "legacy",
    apiKey: "secret",
    keyPair,
  });
  const denied = await post(cp.url, "/route/", {
    endpoint: "e",
    api_key: "wrong",
    cost: 100,
  });
  assert.equal(denied.status, 401);
  await denied.body?.cancel();
  const auth = await (await post(cp.url, "/route/", {
    endpoint: "e",
    api_key: "secret",
    cost: 100,
  })).json();
  const message = legacySignatureMessage({
    cost: auth.cost,
    endpoint: auth.endpoint,
    reqnum: auth.reqnum,
    request_idx: auth.request_idx,
    url: auth.url,
  });
  assert.equal(
    message,
    `{\n    "cost": 100.0,\n    "endpoint": "e",\n    "reqnum": ${auth.reqnum},\n` +
      `    "request_idx": ${auth.request_idx},\n    "url": "https://1.2.3.4:5"\n}`,
  );
  assert.ok(await verify(cp.publicKeyPem, message, auth.signature));
  assert.equal(
    urlSignatureMessage("https://h\u00e9.example"),
    '{\n    "url": "https://h\\u00e9.example"\n}',
  );
});

Deno.test("legacy message: the stand-in writes cost as Python's json.dumps does", async () => {
  // The .msg files were written by Python (tests/fixtures/auth/generate.py).
  const fixture = (name: string) =>
    Deno.readTextFile(
      new URL(`./fixtures/auth/${name}.msg`, import.meta.url),
    );
  assert.equal(
    legacySignatureMessage({
      cost: 0.00001,
      endpoint: "tiny",
      reqnum: 12,
      request_idx: 0,
      url: "http://10.0.0.2:3000",
    }),
    await fixture("legacy_small_cost"),
  );
  assert.equal(
    legacySignatureMessage({
      cost: 1000,
      endpoint: "my-pytorch-endpoint",
      reqnum: 4,
      request_idx: 35,
      url: "https://120.238.149.138:26172",
    }),
    await fixture("legacy_float_cost"),
  );
});

Deno.test("control plane: waits per new request, keeps the request_idx, then routes", async () => {
  await using cp = await startControlPlane({
    workerUrl: "http://127.0.0.1:9",
    keyPair,
    waitsPerRequest: 2,
  });
  const route = async (request_idx: number) =>
    await (await post(cp.url, "/route/", { endpoint: "e", request_idx }))
      .json();
  const first = await route(0);
  assert.equal(first.status, "waiting");
  assert.ok(first.request_idx > 0);
  assert.equal((await route(first.request_idx)).status, "waiting");
  const routed = await route(first.request_idx);
  assert.equal(routed.request_idx, first.request_idx);
  assert.equal(routed.url, "http://127.0.0.1:9");
  // A second new request waits on its own.
  const other = await route(0);
  assert.equal(other.status, "waiting");
  assert.notEqual(other.request_idx, first.request_idx);
});

Deno.test("control plane: scripted and plain-text replies, a request log, raw text and headers in records", async () => {
  await using cp = await startControlPlane({ keyPair });
  cp.setPubkeyReply((n) =>
    n === 1 ? { status: 503, text: "warming up" } : undefined
  );
  const warming = await fetch(`${cp.url}/pubkey/`);
  assert.equal(warming.status, 503);
  assert.equal(await warming.text(), "warming up");
  assert.equal(
    await (await fetch(`${cp.url}/pubkey/`)).text(),
    cp.publicKeyPem,
  );

  // A scripted reply may wait; it is given up when the stand-in stops.
  const gate = Promise.withResolvers<undefined>();
  cp.setRouteReply(async () => {
    await gate.promise;
    return { status: 401, text: "route says no" };
  });
  const refused = post(cp.url, "/route/", { endpoint: "e" });
  await waitFor(() => cp.requests.length === 3, 1000, "route received");
  gate.resolve(undefined);
  const res = await refused;
  assert.equal(res.status, 401);
  assert.equal(await res.text(), "route says no");

  const big = '{"id": 1, "working_request_idxs": [9223372036854775808]}';
  (await post(cp.url, "/worker_status/", big, {
    headers: { authorization: "Bearer t" },
  })).body?.cancel();
  const [rec] = cp.statusReports;
  assert.equal(rec.text, big);
  assert.equal(rec.headers.get("authorization"), "Bearer t");
  (await fetch(`${cp.url}/nowhere`)).body?.cancel();
  assert.deepEqual(cp.requests.map((r) => `${r.method} ${r.path}`), [
    "GET /pubkey/",
    "GET /pubkey/",
    "POST /route/",
    "POST /worker_status/",
    "GET /nowhere",
  ]);

  // A lost /pubkey/ answer never comes: the caller's try times out.
  cp.setPubkeyReply({ lost: true });
  await assert.rejects(
    fetch(`${cp.url}/pubkey/`, { signal: AbortSignal.timeout(100) }),
  );
});

/** A full `/worker_status/` body as the worker sends it (17 keys). */
function status(
  id: number,
  over: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    id,
    mtoken: "t",
    version: "1.1.0",
    loadtime: 3.5,
    cur_load: 0.0,
    rej_load: 0.0,
    new_load: 0.0,
    error_msg: "",
    max_perf: 100.0,
    cur_perf: 0.0,
    cur_capacity: 0,
    max_capacity: 0,
    num_requests_working: 0,
    num_requests_recieved: 0,
    additional_disk_usage: 0.0,
    working_request_idxs: [],
    url: `http://127.0.0.1:${9000 + id}`,
    ...over,
  };
}

async function report(cp: { url: string }, body: unknown): Promise<number> {
  const res = await post(cp.url, "/worker_status/", body);
  await res.body?.cancel();
  return res.status;
}

async function routeTo(
  cp: { url: string },
  cost = 100,
  request_idx = 0,
): Promise<Record<string, unknown>> {
  return await (await post(cp.url, "/route/", {
    endpoint: "e",
    api_key: "k",
    cost,
    request_idx,
  })).json();
}

Deno.test("/route/ picks among reporting workers the ready one with the least expected wait", async () => {
  await using cp = await startControlPlane({ keyPair, strict: true });
  // Loading (no loadtime, no max_perf yet): nobody to route to.
  assert.equal(
    await report(cp, status(1, { loadtime: 0.0, max_perf: 0.0 })),
    200,
  );
  const waiting = await routeTo(cp);
  assert.equal(waiting.status, "waiting");
  assert.equal(cp.readyWorkers, 0);
  const queued = await (await fetch(`${cp.url}/api/view`)).json();
  assert.equal(queued.facts["waiting to be routed"], 1);
  assert.equal(queued.workers[0].state, "loading");

  // Worker 1: 300 in flight at 100/s (3 s of work); worker 2: 100 at 25/s (4 s).
  await report(
    cp,
    status(1, {
      cur_load: 300.0,
      num_requests_working: 3,
      working_request_idxs: [1, 2, 3],
    }),
  );
  await report(
    cp,
    status(2, {
      cur_load: 100.0,
      max_perf: 25.0,
      num_requests_working: 1,
      working_request_idxs: [4],
    }),
  );
  assert.equal(cp.readyWorkers, 2);
  const first = await routeTo(cp);
  assert.equal(first.url, "http://127.0.0.1:9001", "3 s < 4 s");
  // What was routed counts until the worker reports it: 1 now has 4 s too,
  // then 5 s, so the next goes to 2 (4 s).
  const second = await routeTo(cp);
  assert.equal(second.url, "http://127.0.0.1:9001", "4 s each: the first wins");
  const third = await routeTo(cp);
  assert.equal(third.url, "http://127.0.0.1:9002", "5 s > 4 s");
  // Reports replace the guesses with figures: worker 1 finished the two
  // (delete_requests), worker 2 lists the third in its working set; both
  // then have nothing ahead, and the tie goes to the first.
  await report(cp, status(1));
  const closed = await post(cp.url, "/delete_requests/", {
    worker_id: 1,
    mtoken: "t",
    requests: [first, second].map((r) => ({
      request_idx: r.request_idx,
      success: true,
      status: "Success",
      entered_queue_at: 1.0,
      work_started_at: 1.0,
      work_completed_at: 2.0,
    })),
  });
  assert.equal(closed.status, 200);
  await closed.body?.cancel();
  await report(
    cp,
    status(2, {
      cur_load: 0.0,
      max_perf: 25.0,
      working_request_idxs: [third.request_idx],
      num_requests_working: 1,
    }),
  );
  assert.equal((await routeTo(cp)).url, "http://127.0.0.1:9001");

  // An error takes a worker out; so does silence (stale), and a worker
  // with max_queue_time of work ahead makes a request wait.
  await report(cp, status(1, { error_msg: "CUDA out of memory" }));
  await report(
    cp,
    status(2, {
      cur_load: 800.0,
      max_perf: 25.0,
      num_requests_working: 8,
      working_request_idxs: [1, 2, 3, 4, 5, 6, 7, 8],
    }),
  );
  const full = await routeTo(cp, 100);
  assert.equal(full.status, "waiting", "32 s of work > max_queue_time 30 s");
  const view = await (await fetch(`${cp.url}/api/view`)).json();
  assert.deepEqual(
    view.workers.map((w: { id: number; state: string }) => [w.id, w.state]),
    [[1, "error"], [2, "ready"]],
  );
  assert.equal(view.workers[0].errorMsg, "CUDA out of memory");
  assert.equal(view.workers[1].waitSeconds, 32);
});

Deno.test("an idle worker takes a request larger than max_queue_time; a silent one is not routed to", async () => {
  await using cp = await startControlPlane({
    keyPair,
    maxQueueTime: 1,
    staleMs: 150,
  });
  await report(cp, status(1));
  const big = await routeTo(cp, 10_000);
  assert.equal(big.url, "http://127.0.0.1:9001", "idle: routed anyway");
  const next = await routeTo(cp, 10);
  assert.equal(next.status, "waiting", "100 s ahead of it now");
  await new Promise((r) => setTimeout(r, 250));
  const view = await (await fetch(`${cp.url}/api/view`)).json();
  assert.equal(view.workers[0].state, "stale");
  assert.equal(cp.readyWorkers, 0);
});

Deno.test("strict: a report that is not what a worker sends is a 422 naming the field, and kept", async () => {
  await using cp = await startControlPlane({ keyPair, strict: true });
  const cases: [unknown, string, RegExp][] = [
    [status(1, { cur_load: "12" }), "cur_load", /expected a finite number/],
    [
      status(1, { num_requests_received: 0 }),
      "num_requests_received",
      /unknown field/,
    ],
    [(({ max_perf: _, ...rest }) => rest)(status(1)), "max_perf", /missing/],
    [status(1, { id: -1 }), "id", /integer >= 0/],
    [status(1, { url: "ftp://x" }), "url", /http\(s\) URL/],
    [status(1, { cur_capacity: 3 }), "cur_capacity", /always 0/],
    [
      status(1, { working_request_idxs: [1.5] }),
      "working_request_idxs",
      /integers/,
    ],
    [status(1, { num_requests_working: 2 }), "num_requests_working", /lists 0/],
    [[1, 2], "(body)", /JSON object/],
    [
      { id: 1, mtoken: "t", version: "1", error_msg: "", url: "http://x:1" },
      "error_msg",
      /non-empty/,
    ],
  ];
  for (const [body, field, error] of cases) {
    const res = await post(cp.url, "/worker_status/", body);
    assert.equal(res.status, 422, field);
    const answer = await res.json();
    assert.equal(answer.field, field);
    assert.match(
      answer.error,
      new RegExp(`^invalid worker_status: ${field.replace(/[()]/g, "\\$&")}: `),
    );
    assert.match(answer.problems[0].error, error, field);
  }
  assert.equal(cp.invalidReports.length, cases.length);
  assert.equal(
    cp.statusReports.length,
    cases.length,
    "kept in the history too",
  );
  assert.equal(cp.statusReports[0].problems?.[0].field, "cur_load");
  assert.equal(cp.readyWorkers, 0, "no invalid report registers a worker");

  // The start script's 5-key body is what the autoscaler accepts.
  const failure = {
    id: 4,
    mtoken: "t",
    version: "0",
    error_msg: "PyWorker exited with status 1",
    url: "",
  };
  assert.equal(await report(cp, failure), 200, "url may be empty");
  assert.equal(
    await report(cp, { ...failure, url: "http://1.2.3.4:5" }),
    200,
  );
  const view = await (await fetch(`${cp.url}/api/view`)).json();
  assert.equal(view.workers[0].state, "error");
  assert.equal(view.facts["invalid reports"], cases.length);
  // The page lists the last reports, a bad one with its field named.
  assert.equal(view.reports.length, 12);
  assert.equal(view.reports[0].kind, "worker_status");
  assert.deepEqual(view.reports[0].problems, []);
  assert.match(view.reports[0].body, /PyWorker exited with status 1/);
  const curLoad = view.reports.find((r: { body: string }) =>
    r.body.includes('"cur_load":"12"')
  );
  assert.deepEqual(curLoad.problems, ["cur_load: expected a finite number"]);
  assert.match(curLoad.body, /"mtoken":"\(hidden\)"/, "no token on the page");

  /** A delete body whose one request is a valid success, with `change`
   * (a field set to `undefined` is left out). */
  const oneRequest = (change: Record<string, unknown>) => ({
    worker_id: 1,
    mtoken: "t",
    requests: [{
      request_idx: 3,
      success: true,
      status: "Success",
      entered_queue_at: 1.0,
      work_started_at: 2.0,
      work_completed_at: 3.0,
      ...change,
    }],
  });
  const badDeletes: [unknown, string, RegExp][] = [
    [
      oneRequest({ status: "Done" }),
      "requests[0].status",
      /one of Success, Error, Cancelled, Rejected/,
    ],
    [
      oneRequest({ success: false, status: "Cancelled" }),
      "requests[0].success",
      /must be true for status Cancelled/,
    ],
    [
      oneRequest({ entered_queue_at: 5.0 }),
      "requests[0].work_started_at",
      /before entered_queue_at/,
    ],
    [
      oneRequest({ work_completed_at: undefined }),
      "requests[0].work_completed_at",
      /missing/,
    ],
    [{ worker_id: "1", mtoken: "t", requests: [] }, "worker_id", /integer/],
    [
      { worker_id: 1, request_idxs: [1], success: "yes" },
      "success",
      /true or false/,
    ],
  ];
  for (const [body, field, error] of badDeletes) {
    const res = await post(cp.url, "/delete_requests/", body);
    assert.equal(res.status, 422, field);
    const answer = await res.json();
    assert.equal(answer.field, field);
    assert.match(answer.problems[0].error, error, field);
  }
  // All three shapes the autoscaler takes are accepted.
  for (
    const ok of [
      {
        worker_id: 1,
        mtoken: "t",
        requests: [{
          request_idx: 3,
          success: true,
          status: "Cancelled",
          entered_queue_at: 1.0,
          work_started_at: 1.0,
          work_completed_at: 3.0,
        }],
      },
      { worker_id: 1, mtoken: "t", request_idxs: [35, 36], success: false },
      { worker_id: 1, request_idxs: [37] },
    ]
  ) {
    const res = await post(cp.url, "/delete_requests/", ok);
    assert.equal(res.status, 200, JSON.stringify(ok));
    await res.body?.cancel();
  }
});

Deno.test("a report answered with a simulated refusal registers nobody", async () => {
  await using cp = await startControlPlane({ keyPair });
  cp.setStatusReply({ status: 503 });
  assert.equal(await report(cp, status(1)), 503);
  assert.equal(cp.readyWorkers, 0);
  assert.equal((await routeTo(cp)).status, "waiting");
  cp.setStatusReply(undefined);
  assert.equal(await report(cp, status(1)), 200);
  assert.equal((await routeTo(cp)).url, "http://127.0.0.1:9001");
});

Deno.test("not strict (the default): odd reports are accepted, their problems kept", async () => {
  await using cp = await startControlPlane({ keyPair });
  assert.equal(await report(cp, { id: 1 }), 200);
  assert.equal(cp.invalidReports.length, 1);
  assert.deepEqual(
    cp.invalidReports[0].problems.map((p) => p.field).slice(0, 2),
    ["mtoken", "version"],
  );
});

Deno.test("the live page is one self-contained HTML document; its data lists routed and finished requests", async () => {
  await using cp = await startControlPlane({ keyPair, title: "my <plane>" });
  const page = await fetch(`${cp.url}/`);
  assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
  const html = await page.text();
  assert.match(html, /<title>my &#60;plane&#62;<\/title>/);
  assert.doesNotMatch(
    html,
    /<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3\.org)/,
  );
  assert.match(html, /"dataUrl":"api\/view"/);

  await report(cp, status(3));
  const a = await routeTo(cp, 50);
  const b = await routeTo(cp, 70);
  const done = await post(cp.url, "/delete_requests/", {
    worker_id: 3,
    mtoken: "t",
    requests: [{
      request_idx: a.request_idx,
      success: false,
      status: "Error",
      entered_queue_at: 10.0,
      work_started_at: 10.5,
      work_completed_at: 12.0,
    }],
  });
  await done.body?.cancel();
  const view = await (await fetch(`${cp.url}/api/view`)).json();
  assert.deepEqual(
    view.requests.map((
      r: Record<string, unknown>,
    ) => [
      r.requestIdx,
      r.worker,
      r.workload,
      r.outcome,
      r.queueSeconds,
      r.workSeconds,
    ]),
    [
      [String(b.request_idx), 3, 70, "routed", null, null],
      [String(a.request_idx), 3, 50, "Error", 0.5, 1.5],
    ],
  );
  assert.equal(view.series.length, 120);
  assert.equal(view.facts.routed, 2);
});
