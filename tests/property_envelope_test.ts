/**
 * Property tests of the request path over real HTTP: any body a client can
 * send (bytes, JSON, envelopes with any field of any type) gets a 2xx or a
 * 4xx with a JSON body, a valid envelope's payload reaches the model
 * unchanged, and no envelope whose signature or url was changed reaches the
 * model. Seeds: see `tests/chaos/fc_params.ts` (`FC_SEED` replays).
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { fcParams } from "./chaos/fc_params.ts";
import {
  AUTH_DATA_FIELDS,
  generateKeys,
  signedAuth,
  withKeyedWorker,
} from "./helpers/signing.ts";
import { post } from "./helpers/http.ts";

const URL_SIGNED = "https://203.0.113.5:41234";

/** A worker that checks signatures, before the scripted model server. */
async function withSignedWorker(
  fn: (
    base: string,
    auth: Record<string, unknown>,
    upstreamBodies: () => number,
  ) => Promise<void>,
): Promise<void> {
  const keys = await generateKeys();
  await withKeyedWorker(keys, [{
    route: "/echo",
    allowParallelRequests: true,
    maxQueueTime: null,
  }], async (w, up) => {
    const auth = await signedAuth(keys.privateKey, URL_SIGNED);
    await fn(w.url, auth, () => up.bodies.length);
    // The worker is still healthy (and, checked on return, holds nothing).
    const health = await fetch(`${w.url}/health`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
  });
}

/** Problems with an answer: not 2xx/4xx, or no JSON object body. */
async function judge(
  res: Response,
): Promise<{ status: number; body: unknown }> {
  const text = await res.text();
  assert.ok(
    (res.status >= 200 && res.status < 300) ||
      (res.status >= 400 && res.status < 500),
    `status ${res.status}: ${text.slice(0, 200)}`,
  );
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
  const body = JSON.parse(text);
  assert.ok(
    body !== null && typeof body === "object",
    `body ${text.slice(0, 200)}`,
  );
  return { status: res.status, body };
}

/** The valid value, another of its type, or any JSON value. */
const anyOr = <T>(valid: T, sameType: fc.Arbitrary<unknown>) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant(valid) },
    { weight: 2, arbitrary: sameType },
    { weight: 1, arbitrary: fc.jsonValue() },
  );

Deno.test("any request body gets a 2xx or 4xx with a JSON body", async () => {
  await withSignedWorker(async (base, auth) => {
    const authArb = fc.oneof(
      fc.constant(auth),
      fc.record({
        cost: anyOr(auth.cost, fc.oneof(fc.double(), fc.string())),
        endpoint: anyOr(auth.endpoint, fc.string({ unit: "binary" })),
        reqnum: anyOr(auth.reqnum, fc.integer()),
        request_idx: anyOr(auth.request_idx, fc.integer()),
        signature: anyOr(auth.signature, fc.base64String()),
        url: anyOr(auth.url, fc.webUrl()),
        __request_id: anyOr(auth.__request_id, fc.uuid()),
      }, {
        requiredKeys: [...AUTH_DATA_FIELDS],
      }),
      fc.jsonValue(),
    );
    const envelope = fc.record({
      auth_data: authArb,
      payload: fc.oneof(
        {
          weight: 3,
          arbitrary: fc.dictionary(
            fc.string({ unit: "binary" }),
            fc.jsonValue(),
          ),
        },
        fc.jsonValue(),
      ),
      session_id: fc.oneof(fc.constant(null), fc.string(), fc.jsonValue()),
    }, { requiredKeys: ["auth_data", "payload"] });
    // Mostly without session_id (an unknown session is a 410 before the
    // signature is checked).
    const envelopeMostly = fc.oneof(
      {
        weight: 3,
        arbitrary: envelope.map(({ session_id: _, ...rest }) => rest),
      },
      envelope,
    );
    const seen = new Map<number, number>();
    const body = fc.oneof(
      fc.string({ unit: "binary" }),
      fc.uint8Array({ maxLength: 300 }),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      { weight: 6, arbitrary: envelopeMostly.map((v) => JSON.stringify(v)) },
    );
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        const res = await post(base, "/echo", "", { body: b as BodyInit });
        const { status, body: answer } = await judge(res);
        seen.set(status, (seen.get(status) ?? 0) + 1);
        if (status === 200 && typeof b === "string") {
          // A valid envelope: the payload reached the model unchanged.
          const sent = JSON.parse(b).payload;
          assert.deepEqual(
            (answer as { received: unknown }).received,
            JSON.parse(JSON.stringify(sent)),
          );
        }
      }),
      fcParams(250),
    );
    // Every kind of answer came up: the property is not vacuous.
    for (const s of [200, 401, 422]) {
      assert.ok(seen.has(s), `no ${s} in ${[...seen]}`);
    }
  });
});

Deno.test("no envelope with a changed signature or url reaches the model", async () => {
  await withSignedWorker(async (base, auth, upstreamBodies) => {
    const sig = String(auth.signature);
    const bytes = Uint8Array.fromBase64(sig);
    const mutation = fc.oneof(
      // One bit of the signature flipped.
      fc.record({
        bit: fc.integer({ min: 0, max: bytes.length * 8 - 1 }),
      }).map(({ bit }) => {
        const b = bytes.slice();
        b[bit >> 3] ^= 1 << (bit & 7);
        return { signature: b.toBase64() };
      }),
      // Any other signature text.
      fc.string({ unit: "binary" }).filter((s) => s !== sig).map((
        signature,
      ) => ({ signature })),
      // The url changed (the signature covers only the url).
      fc.string({ unit: "binary" }).filter((u) => u !== auth.url).map((
        url,
      ) => ({ url })),
    );
    await fc.assert(
      fc.asyncProperty(mutation, fc.jsonValue(), async (m, extra) => {
        const before = upstreamBodies();
        const res = await post(
          base,
          "/echo",
          JSON.stringify({ auth_data: { ...auth, ...m }, payload: { extra } }),
        );
        const { status } = await judge(res);
        assert.ok(status === 401 || status === 422, `status ${status}`);
        assert.equal(
          upstreamBodies(),
          before,
          "a changed envelope reached the model",
        );
      }),
      fcParams(200),
    );
    // The unchanged envelope is served (the property is not vacuous).
    const ok = await post(
      base,
      "/echo",
      JSON.stringify({ auth_data: auth, payload: { a: 1 } }),
    );
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { received: { a: 1 } });
  });
});
