import assert from "node:assert/strict";
import {
  importPublicKey,
  legacyMessage,
  shortenSecret,
  SignatureVerifier,
  tokensEqual,
  urlMessage,
  type VerifyResult,
} from "../lib/auth/signatures.ts";
import { controlPlaneKeys } from "./helpers/dev.ts";
import { captureLogs } from "./helpers/logs.ts";

const FIXTURES = new URL("./fixtures/auth/", import.meta.url);
const encoder = new TextEncoder();
const OK: VerifyResult = { ok: true };

const signer = await controlPlaneKeys();
const stranger = await controlPlaneKeys();

/** Signs text the way the autoscaler does: RSASSA-PKCS1-v1_5 over SHA-256, base64. */
async function sign(text: string, key = signer.privateKey): Promise<string> {
  const sig = await crypto.subtle.sign(
    "RSASSA-PKCS1-v1_5",
    key,
    encoder.encode(text),
  );
  return new Uint8Array(sig).toBase64();
}

// Hand-written message texts, independent of lib/auth.ts.
const urlText = (url: string) => `{\n    "url": "${url}"\n}`;
const legacyText = (
  reqnum: number | bigint,
  idx: number | bigint,
  url: string,
) =>
  `{\n    "cost": 1000.0,\n    "endpoint": "ep",\n    "reqnum": ${reqnum},\n` +
  `    "request_idx": ${idx},\n    "url": "${url}"\n}`;

/** A legacy request as the client sends it: raw body text plus its parsed auth_data. */
async function legacyRequest(
  reqnum: number | bigint,
  idx: number | bigint = 1,
  url = "http://w:1",
) {
  const signature = await sign(legacyText(reqnum, idx, url));
  const body = `{"auth_data": {"__request_id": "r", "cost": 1000.0, ` +
    `"endpoint": "ep", "reqnum": ${reqnum}, "request_idx": ${idx}, ` +
    `"signature": "${signature}", "url": "${url}"}, "payload": {}}`;
  return { auth: JSON.parse(body).auth_data, body };
}

function verifier(
  options: ConstructorParameters<typeof SignatureVerifier>[0],
  key: CryptoKey | null = signer.publicKey,
): SignatureVerifier {
  const v = new SignatureVerifier(options);
  if (key) v.setKey(key);
  return v;
}

Deno.test("urlMessage() gives Python's bytes, escaping non-ASCII", () => {
  const text = new TextDecoder().decode(urlMessage("https://1.2.3.4:41234"));
  assert.equal(text, '{\n    "url": "https://1.2.3.4:41234"\n}');
  assert.deepEqual(
    urlMessage("https://bü.example/\u{1F600}"),
    encoder.encode(
      '{\n    "url": "https://b\\u00fc.example/\\ud83d\\ude00"\n}',
    ),
  );
});

Deno.test("legacyMessage() drops signature and __request_id and keeps 1000.0 from the raw body", async () => {
  const { auth, body } = await legacyRequest(4, 35);
  const expected = legacyText(4, 35, "http://w:1");
  assert.equal(new TextDecoder().decode(legacyMessage(auth, body)), expected);
  // Without the raw body JS cannot know 1000 was written as 1000.0.
  assert.equal(
    new TextDecoder().decode(legacyMessage(auth)),
    expected.replace("1000.0", "1000"),
  );
});

Deno.test("legacyMessage() signs only the AuthData dataclass fields, like Python", async () => {
  const auth = {
    cost: 256,
    endpoint: "ep",
    region: "eu-west", // unknown to Python's AuthData, so never signed
    reqnum: 9,
    request_idx: 2,
    signature: "x",
    url: "http://w:1",
  };
  const five =
    '{\n    "cost": 256,\n    "endpoint": "ep",\n    "reqnum": 9,\n' +
    '    "request_idx": 2,\n    "url": "http://w:1"\n}';
  assert.equal(new TextDecoder().decode(legacyMessage(auth)), five);
  // The 2024-09 worker signed four fields (no request_idx).
  const fields = ["cost", "endpoint", "reqnum", "url"];
  const four = five.replace('    "request_idx": 2,\n', "");
  assert.equal(
    new TextDecoder().decode(legacyMessage(auth, undefined, fields)),
    four,
  );
  const signed = { ...auth, signature: await sign(four) };
  const v = verifier({ format: "legacy", legacyFields: fields });
  assert.deepEqual(await v.verify(signed), OK);
  assert.deepEqual(await verifier({ format: "legacy" }).verify(signed), {
    ok: false,
    reason: "signature does not match",
  });
});

Deno.test("known-answer vectors: lib/auth.ts rebuilds Python's bytes and verifies openssl signatures", async () => {
  const vectors: {
    name: string;
    format: "url" | "legacy";
    body: string;
    message_file: string;
    signature: string;
  }[] = JSON.parse(await Deno.readTextFile(new URL("vectors.json", FIXTURES)));
  assert.equal(vectors.length, 5);
  const keys = await Promise.all(
    ["public_spki.pem", "public_pkcs1.pem"].map(async (f) =>
      importPublicKey(await Deno.readTextFile(new URL(f, FIXTURES)))
    ),
  );
  for (const v of vectors) {
    const auth = JSON.parse(v.body).auth_data;
    const expected = await Deno.readFile(new URL(v.message_file, FIXTURES));
    const built = v.format === "url"
      ? urlMessage(auth.url)
      : legacyMessage(auth, v.body);
    assert.deepEqual(built, expected, `${v.name}: message bytes`);
    for (const key of keys) {
      for (const format of [v.format, "any"] as const) {
        const result = await verifier({ format }, key).verify(auth, v.body);
        assert.deepEqual(result, OK, `${v.name} (${format})`);
      }
    }
  }
});

Deno.test("verify() accepts a url signature and rejects every invalid kind", async () => {
  const url = "https://1.2.3.4:41234";
  const signature = await sign(urlText(url));
  const v = verifier({ format: "url" });
  assert.deepEqual(await v.verify({ url, signature }), OK);
  const reject = async (
    auth: Record<string, unknown>,
    reason: string,
    vv = v,
  ) => assert.deepEqual(await vv.verify(auth), { ok: false, reason });
  await reject(
    { url: "https://6.6.6.6:1", signature },
    "signature does not match",
  );
  await reject(
    { url, signature: "not base64!" },
    "signature is not valid base64",
  );
  await reject(
    { url, signature: "QUJD" },
    "signature has wrong length: expected 256 bytes, got 3",
  );
  await reject({ url }, "signature is missing or not a string");
  await reject({ signature }, "url is missing or not a string");
  await reject({
    url,
    signature: await sign(urlText(url), stranger.privateKey),
  }, "signature does not match");
  await reject(
    { url, signature },
    "public key not loaded yet",
    verifier({ format: "url" }, null),
  );
  // A key that may not verify is a setup error, reported instead of thrown.
  await reject(
    { url, signature },
    "signature check failed: The requested operation is not valid for the provided key",
    verifier({ format: "url" }, signer.privateKey),
  );
});

Deno.test("verify() with unsecured accepts anything, even without a key", async () => {
  const v = verifier({ format: "legacy", unsecured: true }, null);
  assert.equal(v.hasKey, false);
  for (const auth of [{}, { signature: "!!" }, { signature: "QUJD", url: 1 }]) {
    assert.deepEqual(await v.verify(auth), OK);
  }
});

Deno.test("a cached signature cannot validate a different url, and RSA runs once per pair", async () => {
  await countingRsa(async (calls) => {
    const signature = await sign(urlText("http://a:1"));
    const v = verifier({ format: "url" });
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await v.verify({ url: "http://a:1", signature }), OK);
    }
    assert.equal(calls(), 1);
    assert.deepEqual(await v.verify({ url: "http://b:1", signature }), {
      ok: false,
      reason: "signature does not match",
    });
    assert.equal(calls(), 2);
    // With room for one entry, alternating pairs evict each other.
    const tiny = verifier({ format: "url", cacheSize: 1 });
    const other = await sign(urlText("http://c:1"));
    const before = calls();
    for (
      const [url, sig] of [["http://a:1", signature], ["http://c:1", other], [
        "http://a:1",
        signature,
      ]]
    ) {
      assert.deepEqual(await tiny.verify({ url, signature: sig }), OK);
    }
    assert.equal(calls() - before, 3);
  });
});

Deno.test("setKey() drops cached results made with the old key", async () => {
  const signature = await sign(urlText("http://a:1"));
  const v = verifier({ format: "url" });
  assert.deepEqual(await v.verify({ url: "http://a:1", signature }), OK);
  v.setKey(stranger.publicKey);
  assert.deepEqual(await v.verify({ url: "http://a:1", signature }), {
    ok: false,
    reason: "signature does not match",
  });
});

Deno.test("expectedUrl rejects a valid signature made for another worker", async () => {
  const v = verifier({ format: "url", expectedUrl: "https://me:2" });
  const mine = await sign(urlText("https://me:2"));
  const theirs = await sign(urlText("https://other:1"));
  assert.deepEqual(
    await v.verify({ url: "https://me:2", signature: mine }),
    OK,
  );
  assert.deepEqual(
    await v.verify({ url: "https://other:1", signature: theirs }),
    {
      ok: false,
      reason:
        "url mismatch: signed for https://other:1, this worker is https://me:2",
    },
  );
});

Deno.test("legacy format rejects a replayed message even though its result is cached", async () => {
  const v = verifier({ format: "legacy" });
  const { auth, body } = await legacyRequest(7);
  assert.deepEqual(await v.verify(auth, body), OK);
  assert.deepEqual(await v.verify(auth, body), {
    ok: false,
    reason: "replayed request",
  });
  // Two copies racing each other: exactly one gets through.
  const fresh = await legacyRequest(8);
  const results = await Promise.all([
    v.verify(fresh.auth, fresh.body),
    v.verify(fresh.auth, fresh.body),
  ]);
  assert.deepEqual(results.filter((r) => r.ok).length, 1);
});

Deno.test("legacy format enforces the reqnum window of 100 below the latest accepted", async () => {
  const v = verifier({ format: "legacy" });
  const latest = await legacyRequest(500);
  assert.deepEqual(await v.verify(latest.auth, latest.body), OK);
  const old = await legacyRequest(399);
  assert.deepEqual(await v.verify(old.auth, old.body), {
    ok: false,
    reason: "reqnum 399 is outside the replay window (latest 500)",
  });
  const edge = await legacyRequest(400);
  assert.deepEqual(await v.verify(edge.auth, edge.body), OK);
});

Deno.test("legacy history remembers only the last 100 accepted messages", async () => {
  const v = verifier({ format: "legacy" });
  const first = await legacyRequest(1, 0);
  assert.deepEqual(await v.verify(first.auth, first.body), OK);
  for (let idx = 1; idx <= 100; idx++) {
    const r = await legacyRequest(1, idx);
    assert.deepEqual(await v.verify(r.auth, r.body), OK);
  }
  // Pushed out of the history by 100 newer ones, as in Python's msg_history[-100:].
  assert.deepEqual(await v.verify(first.auth, first.body), OK);
});

Deno.test("format any accepts url-only and legacy signatures, nothing else", async () => {
  const v = verifier({ format: "any" });
  const legacy = await legacyRequest(3);
  assert.deepEqual(await v.verify(legacy.auth, legacy.body), OK);
  const urlOnly = {
    ...legacy.auth,
    signature: await sign(urlText("http://w:1")),
  };
  assert.deepEqual(await v.verify(urlOnly), OK);
  const unrelated = { ...legacy.auth, signature: await sign("something else") };
  assert.deepEqual(await v.verify(unrelated), {
    ok: false,
    reason: "signature does not match",
  });
});

Deno.test("a rejected signature is logged at debug with the exact message and a short signature", async () => {
  await using logs = await captureLogs(["edgeworker", "auth"]);
  const signature = await sign(urlText("http://a:1"));
  await verifier({ format: "url" }).verify({ url: "http://b:1", signature });
  assert.equal(logs.records.length, 1);
  const { level, properties } = logs.records[0];
  assert.equal(level, "debug");
  assert.equal(properties.reason, "signature does not match");
  assert.deepEqual(properties.messages, ['{\n    "url": "http://b:1"\n}']);
  const short = properties.signature as string;
  assert.ok(short.startsWith(signature.slice(0, 8)), short);
  assert.ok(short.length < 40 && short.includes("(344 chars)"), short);
});

Deno.test("tokensEqual() compares whole tokens of any length", () => {
  assert.equal(tokensEqual("s3cret-token", "s3cret-token"), true);
  assert.equal(tokensEqual("s3cret-token", "s3cret-tokeN"), false);
  assert.equal(tokensEqual("s3cret", "s3cret-token"), false);
  assert.equal(tokensEqual("", ""), true);
  assert.equal(tokensEqual("", "x"), false);
});

Deno.test("shortenSecret() shows at most 6 characters", () => {
  assert.equal(shortenSecret("abcdefghijklmnop"), "abcdef…");
  assert.equal(shortenSecret("short"), "…");
  assert.equal(shortenSecret(""), "…");
});

/** Counts RSA verifications while `fn` runs. */
async function countingRsa(fn: (calls: () => number) => Promise<void>) {
  const realVerify = crypto.subtle.verify;
  let rsaCalls = 0;
  crypto.subtle.verify = function (
    ...args: Parameters<SubtleCrypto["verify"]>
  ) {
    rsaCalls++;
    return realVerify.apply(this, args);
  };
  try {
    await fn(() => rsaCalls);
  } finally {
    crypto.subtle.verify = realVerify;
  }
}

Deno.test("invalid signatures are never cached, so they cannot push a valid one out", async () => {
  await countingRsa(async (calls) => {
    const v = verifier({ format: "url", cacheSize: 2 });
    const good = {
      url: "http://a:1",
      signature: await sign(urlText("http://a:1")),
    };
    assert.deepEqual(await v.verify(good), OK);
    assert.equal(calls(), 1);
    // Many distinct invalid pairs: each costs one RSA check and is forgotten.
    const forged = await sign(urlText("http://elsewhere:1"));
    for (let i = 0; i < 5; i++) {
      const r = await v.verify({ url: `http://a:1/${i}`, signature: forged });
      assert.equal(r.ok, false);
    }
    assert.equal(calls(), 6);
    // The same invalid pair again is checked again, not answered from a cache.
    await v.verify({ url: "http://a:1/0", signature: forged });
    assert.equal(calls(), 7);
    // The valid pair is still cached: no RSA run.
    assert.deepEqual(await v.verify(good), OK);
    assert.equal(calls(), 7);
  });
});

Deno.test("concurrent copies of one check share a single RSA run", async () => {
  await countingRsa(async (calls) => {
    const v = verifier({ format: "url" });
    const auth = {
      url: "http://a:1",
      signature: await sign(urlText("http://a:1")),
    };
    const results = await Promise.all([1, 2, 3].map(() => v.verify(auth)));
    assert.deepEqual(results, [OK, OK, OK]);
    assert.equal(calls(), 1);
  });
});

Deno.test("format any: a url-signed request's unsigned reqnum does not move the legacy replay window", async () => {
  const v = verifier({ format: "any" });
  const huge = 2 ** 53 - 1;
  const signature = await sign(urlText("http://w:1"));
  const body = `{"auth_data": {"cost": 1000.0, "endpoint": "ep", ` +
    `"reqnum": ${huge}, "request_idx": 1, "signature": "${signature}", ` +
    `"url": "http://w:1"}, "payload": {}}`;
  assert.deepEqual(await v.verify(JSON.parse(body).auth_data, body), OK);
  // A real legacy request with a normal reqnum still gets in...
  const legacy = await legacyRequest(5);
  assert.deepEqual(await v.verify(legacy.auth, legacy.body), OK);
  // ...and it, being signed, does move the window.
  const old = await legacyRequest(5 - 101, 2);
  assert.deepEqual(await v.verify(old.auth, old.body), {
    ok: false,
    reason: "reqnum -96 is outside the replay window (latest 5)",
  });
});

Deno.test("legacy replay window compares integers beyond 2^53 exactly, as Python ints", async () => {
  const v = verifier({ format: "legacy" });
  const latest = 2n ** 60n + 1n;
  const first = await legacyRequest(latest, 2n ** 63n);
  assert.deepEqual(await v.verify(first.auth, first.body), OK);
  const outside = await legacyRequest(latest - 101n);
  assert.deepEqual(await v.verify(outside.auth, outside.body), {
    ok: false,
    reason:
      "reqnum 1152921504606846876 is outside the replay window (latest 1152921504606846977)",
  });
  const edge = await legacyRequest(latest - 100n);
  assert.deepEqual(await v.verify(edge.auth, edge.body), OK);
});

Deno.test("legacy replay window starts where Python's does (reqnum -1)", async () => {
  const v = verifier({ format: "legacy" });
  const tooLow = await legacyRequest(-102);
  assert.deepEqual(await v.verify(tooLow.auth, tooLow.body), {
    ok: false,
    reason: "reqnum -102 is outside the replay window (latest -1)",
  });
  const lowest = await legacyRequest(-101);
  assert.deepEqual(await v.verify(lowest.auth, lowest.body), OK);
});
