import assert from "node:assert/strict";
import {
  legacySignatureMessage,
  startControlPlane,
  urlSignatureMessage,
} from "../dev/control_plane.ts";
import { controlPlaneKeys } from "./helpers/dev.ts";

const keyPair = await controlPlaneKeys();

function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: "POST", body: JSON.stringify(body) });
}

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

  const res = await post(`${cp.url}/route/`, {
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
  assert.deepEqual(Object.keys(auth), [
    "__request_id",
    "cost",
    "endpoint",
    "reqnum",
    "request_idx",
    "signature",
    "url",
  ]);
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

  const again = await (await post(`${cp.url}/route/`, {
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
  const w1 = await (await post(`${cp.url}/route/`, {
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
  const w2 = await (await post(`${cp.url}/route/`, {
    endpoint: "e",
    api_key: "k",
    cost: 100,
    request_idx: w1.request_idx,
  })).json();
  assert.equal(w2.status, "waiting");
  assert.equal(w2.request_idx, w1.request_idx, "the queue position is kept");
  cp.setReady(true);
  const ready = await (await post(`${cp.url}/route/`, {
    endpoint: "e",
    api_key: "k",
    cost: 100,
    request_idx: w1.request_idx,
  })).json();
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
  const r1 = await post(`${cp.url}/worker_status/`, status);
  assert.equal(r1.status, 200);
  await r1.body?.cancel();
  const del = {
    worker_id: 1,
    mtoken: "t",
    requests: [{ request_idx: 3, success: true, status: "Success" }],
  };
  const r2 = await post(`${cp.url}/delete_requests/`, del);
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
  (await post(`${cp.url}/worker_status/`, { ...status, max_perf: 99 })).body
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
  const down = await post(`${cp.url}/worker_status/`, { id: 1 });
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
  const slow = await post(`${cp.url}/delete_requests/`, {
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
  const pending = post(`${cp.url}/worker_status/`, { id: 2 });
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
  const denied = await post(`${cp.url}/route/`, {
    endpoint: "e",
    api_key: "wrong",
    cost: 100,
  });
  assert.equal(denied.status, 401);
  await denied.body?.cancel();
  const auth = await (await post(`${cp.url}/route/`, {
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
