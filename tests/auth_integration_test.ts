/**
 * Signed requests through a real worker: real RSA keys, signatures made over
 * hand-written message bytes, a real model server behind the worker.
 */
import assert from "node:assert/strict";
import type { WorkerConfig } from "../lib/config/schemas.ts";
import { startUpstream, type UpstreamHandle } from "./helpers/upstream.ts";
import {
  generateKeys,
  signedAuth,
  signText,
  signUrl,
  withKeyedWorker,
} from "./helpers/signing.ts";
import { startControlPlane } from "../dev/control_plane.ts";
import { type Running, startWorker } from "./helpers/worker.ts";
import { post, waitFor } from "./helpers/http.ts";

const KEYS = await generateKeys();
const OTHER_KEYS = await generateKeys();
const HANDLERS: WorkerConfig["handlers"] = [
  { route: "/echo", allowParallelRequests: true, workload: () => 10 },
];

function body(
  auth: Record<string, unknown>,
  payload: Record<string, unknown> = { prompt: "hi" },
): string {
  return JSON.stringify({ auth_data: auth, payload, session_id: null });
}

/** A worker that checks signatures against `KEYS`, loaded from a file. */
function withSignedWorker(
  fn: (w: Running, up: UpstreamHandle) => Promise<void>,
  env: Record<string, string> = {},
): Promise<void> {
  return withKeyedWorker(KEYS, HANDLERS, fn, env);
}

/** POSTs and reads the JSON answer. */
async function send(
  w: Running,
  text: string,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await post(w.url, "/echo", text);
  return { status: res.status, json: await res.json() };
}

function rejects(w: Running) {
  return w.ledger.pendingFinished().filter((r) => r.status === "rejected");
}

Deno.test("a validly signed request is forwarded to the model", async () => {
  await withSignedWorker(async (w, up) => {
    const auth = await signedAuth(KEYS.privateKey, "https://203.0.113.5:41234");
    const res = await send(w, body(auth, { prompt: "signed" }));
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { received: { prompt: "signed" } });
    assert.deepEqual(up.bodies, [{ prompt: "signed" }]);
    const [rec] = w.ledger.pendingFinished();
    assert.equal(rec.status, "success");
    assert.equal(w.ledger.window().rejected, 0);
  });
});

Deno.test("every kind of bad signature gets 401 with a reason, reaches nothing and is counted as rejected", async () => {
  await withSignedWorker(async (w, up) => {
    const url = "https://203.0.113.5:41234";
    const good = await signUrl(KEYS.privateKey, url);
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ["bad base64", { signature: "not*base64!" }, /not valid base64/],
      [
        "cut base64 text",
        { signature: good.slice(0, 102) },
        /not valid base64/,
      ],
      [
        "truncated to 128 bytes",
        { signature: Uint8Array.fromBase64(good).slice(0, 128).toBase64() },
        /wrong length: expected 256 bytes, got 128/,
      ],
      [
        "wrong key",
        { signature: await signUrl(OTHER_KEYS.privateKey, url) },
        /does not match/,
      ],
      [
        "tampered url",
        { signature: good, url: "https://203.0.113.6:41234" },
        /does not match/,
      ],
      ["empty signature", { signature: "" }, /wrong length|base64/],
    ];
    let idx = 0;
    for (const [name, override, reason] of cases) {
      idx++;
      const auth = await signedAuth(KEYS.privateKey, url, {
        request_idx: idx,
        ...override,
      });
      const res = await send(w, body(auth));
      assert.equal(res.status, 401, name);
      assert.equal(res.json.error, "invalid signature", name);
      assert.match(String(res.json.reason), reason, name);
    }
    assert.equal(up.bodies.length, 0, "a rejected request reached the model");
    const rejected = rejects(w);
    assert.deepEqual(
      rejected.map((r) => [r.requestIdx, r.rejectReason, r.httpStatus]),
      cases.map((_, i) => [i + 1, "signature", 401]),
    );
    // Each rejected request counts its workload (10) in the report window.
    assert.equal(w.ledger.window().rejected, 10 * cases.length);
    assert.equal(w.ledger.window().served, 0);
    // The same worker still serves a good request afterwards.
    const ok = await send(w, body(await signedAuth(KEYS.privateKey, url)));
    assert.equal(ok.status, 200);
  });
});

Deno.test("while the public key is still on its way requests get 401 at once, then pass once it arrives", async () => {
  const up = startUpstream();
  // A slow autoscaler: /pubkey/ answers once released.
  const autoscaler = await startControlPlane({ keyPair: KEYS.keyPair });
  const key = Promise.withResolvers<undefined>();
  autoscaler.setPubkeyReply(() => key.promise);
  const w = await startWorker({ modelServerUrl: up.url, handlers: HANDLERS }, {
    UNSECURED: "false",
    REPORT_ADDR: autoscaler.url,
  });
  try {
    await waitFor(() => autoscaler.pubkeyFetches === 1, 2000, "pubkey fetch");
    const auth = await signedAuth(KEYS.privateKey);
    const started = Date.now();
    const early = await send(w, body(auth));
    assert.ok(Date.now() - started < 1000, "the request hung on the key");
    assert.equal(early.status, 401);
    assert.equal(early.json.error, "invalid signature");
    assert.match(String(early.json.reason), /public key not loaded/);
    assert.equal(up.bodies.length, 0);
    assert.equal(w.lifecycle.ready, false, "ready without a key");
    const notReady = await fetch(`${w.url}/ready`);
    assert.equal(notReady.status, 503);
    await notReady.body?.cancel();
    assert.equal(rejects(w)[0]?.rejectReason, "signature");

    key.resolve(undefined);
    await waitFor(() => w.lifecycle.ready, 3000, "ready after the key");
    const late = await send(w, body({ ...auth, request_idx: 2 }));
    assert.equal(late.status, 200);
    assert.deepEqual(up.bodies, [{ prompt: "hi" }]);
    assert.equal(autoscaler.pubkeyFetches, 1);
  } finally {
    await w.stop();
    await autoscaler.close();
    await up.close();
  }
});

Deno.test("legacy format: a cost written 1000.0 verifies, and replaying the message gets 401", async () => {
  await withSignedWorker(async (w, up) => {
    const url = "https://120.238.149.138:26172";
    // Python: json.dumps(message, indent=4, sort_keys=True), floats as 1000.0.
    const message = `{
    "cost": 1000.0,
    "endpoint": "my-pytorch-endpoint",
    "reqnum": 4,
    "request_idx": 35,
    "url": "${url}"
}`;
    const signature = await signText(KEYS.privateKey, message);
    const raw =
      `{"auth_data": {"__request_id": "da75", "cost": 1000.0, "endpoint": "my-pytorch-endpoint", "reqnum": 4, "request_idx": 35, "signature": "${signature}", "url": "${url}"}, "payload": {"prompt": "legacy"}, "session_id": null}`;
    const first = await send(w, raw);
    assert.equal(first.status, 200, JSON.stringify(first.json));
    assert.deepEqual(up.bodies, [{ prompt: "legacy" }]);

    const replay = await send(w, raw);
    assert.equal(replay.status, 401);
    assert.match(String(replay.json.reason), /replay/);

    // The same fields signed with JS number spelling ("cost": 1000) are not
    // what the body says: rejected.
    const jsSigned = await signText(
      KEYS.privateKey,
      message.replace("1000.0", "1000").replace('"reqnum": 4', '"reqnum": 5'),
    );
    const jsBody = raw.replace(signature, jsSigned).replace(
      '"reqnum": 4',
      '"reqnum": 5',
    );
    const js = await send(w, jsBody);
    assert.equal(js.status, 401);
    assert.match(String(js.json.reason), /does not match/);

    // A url-only signature is not accepted in legacy mode.
    const urlOnly = await send(
      w,
      raw.replace(signature, await signUrl(KEYS.privateKey, url)).replace(
        '"reqnum": 4',
        '"reqnum": 6',
      ),
    );
    assert.equal(urlOnly.status, 401);
    assert.equal(up.bodies.length, 1);
    assert.deepEqual(
      rejects(w).map((r) => r.rejectReason),
      ["signature", "signature", "signature"],
    );
  }, { EDGEWORKER_SIGNATURE_FORMAT: "legacy" });
});

Deno.test("EDGEWORKER_CHECK_URL accepts only signatures for this worker's public url", async () => {
  // publicUrl: http://PUBLIC_IPADDR:VAST_TCP_PORT_<WORKER_PORT>.
  const env = {
    EDGEWORKER_CHECK_URL: "true",
    WORKER_PORT: "18123",
    VAST_TCP_PORT_18123: "41234",
    PUBLIC_IPADDR: "203.0.113.7",
  };
  await withSignedWorker(async (w, up) => {
    const mine = await signedAuth(KEYS.privateKey, "http://203.0.113.7:41234");
    const ok = await send(w, body(mine, { who: "me" }));
    assert.equal(ok.status, 200, JSON.stringify(ok.json));

    for (
      const [i, other] of [
        "http://203.0.113.8:41234", // another worker
        "http://203.0.113.7:41235", // another port of the same machine
        "https://203.0.113.7:41234", // another scheme
      ].entries()
    ) {
      const auth = await signedAuth(KEYS.privateKey, other, {
        request_idx: 10 + i,
      });
      const res = await send(w, body(auth, { who: other }));
      assert.equal(res.status, 401, other);
      assert.match(String(res.json.reason), /url mismatch/, other);
    }
    assert.deepEqual(up.bodies, [{ who: "me" }]);
    assert.equal(rejects(w).length, 3);
  }, env);
});

Deno.test("EDGEWORKER_CHECK_URL without VAST_TCP_PORT_<port> expects the listening port", async () => {
  const env = { EDGEWORKER_CHECK_URL: "true", PUBLIC_IPADDR: "203.0.113.7" };
  await withSignedWorker(async (w, up) => {
    const mine = await signedAuth(
      KEYS.privateKey,
      `http://203.0.113.7:${w.port}`,
    );
    const ok = await send(w, body(mine));
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    const other = await signedAuth(KEYS.privateKey, "http://203.0.113.7:3000");
    const no = await send(w, body(other));
    assert.equal(no.status, 401);
    assert.equal(up.bodies.length, 1);
  }, env);
});

Deno.test("UNSECURED=true lets every request through, signed or not", async () => {
  const up = startUpstream();
  const w = await startWorker({ modelServerUrl: up.url, handlers: HANDLERS }, {
    UNSECURED: "true",
  });
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const good = await signedAuth(KEYS.privateKey);
    const signatures = [
      good.signature,
      "not*base64!",
      await signUrl(OTHER_KEYS.privateKey, "https://elsewhere:1"),
      "",
    ];
    for (const [i, signature] of signatures.entries()) {
      const res = await send(
        w,
        body({ ...good, signature, request_idx: i }, { i }),
      );
      assert.equal(res.status, 200);
    }
    assert.deepEqual(up.bodies, signatures.map((_, i) => ({ i })));
    assert.equal(rejects(w).length, 0);
  } finally {
    await w.stop();
    await up.close();
  }
});
