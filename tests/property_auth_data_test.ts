/**
 * Property tests of `auth_data` signatures (`lib/auth.ts`) against messages
 * signed the way the autoscaler signs them (the control-plane stand-in's
 * own Python-style encoder, independent of the worker's): a signature over
 * any url or any legacy field set verifies, and no changed signature,
 * url or signed field does, whatever the change. Seeds: see
 * `tests/chaos/fc_params.ts` (`FC_SEED` replays).
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { SignatureVerifier } from "../lib/auth/signatures.ts";
import {
  legacySignatureMessage,
  signText,
  urlSignatureMessage,
} from "../dev/_signing.ts";
import { fcParams } from "./chaos/fc_params.ts";
import { controlPlaneKeys } from "./helpers/dev.ts";

const keys = await controlPlaneKeys();

/** A fresh verifier (the legacy replay window is per verifier). */
function verifier(format: "url" | "legacy" | "any"): SignatureVerifier {
  const v = new SignatureVerifier({ format, cacheSize: 0 });
  v.setKey(keys.publicKey);
  return v;
}

/** Flips bit `bit` of the decoded signature. */
function flipBit(signature: string, bit: number): string {
  const b = Uint8Array.fromBase64(signature);
  b[(bit >> 3) % b.length] ^= 1 << (bit & 7);
  return b.toBase64();
}

const anyText = fc.string({ unit: "binary", maxLength: 80 });

Deno.test("a url signature verifies for its url and for no other url or signature", async () => {
  await fc.assert(
    fc.asyncProperty(
      anyText,
      anyText,
      fc.nat(2047),
      async (url, other, bit) => {
        fc.pre(other !== url);
        const signature = await signText(
          keys.privateKey,
          urlSignatureMessage(url),
        );
        const base = {
          cost: 100,
          endpoint: "e",
          reqnum: 1,
          request_idx: 1,
          url,
          signature,
        };
        const v = verifier("url");
        assert.deepEqual(
          await v.verify(base),
          { ok: true },
          `url ${JSON.stringify(url)}`,
        );
        for (
          const changed of [
            { ...base, url: other },
            { ...base, signature: flipBit(signature, bit) },
          ]
        ) {
          const r = await v.verify(changed);
          assert.equal(r.ok, false, `verified ${JSON.stringify(changed)}`);
        }
      },
    ),
    fcParams(150),
  );
});

/** Legacy auth fields; `cost` has a fraction so JSON and Python print it alike. */
const legacyFields = fc.record({
  cost: fc.integer({ min: 0, max: 1_000_000 }).map((n) => n + 0.5),
  endpoint: anyText,
  reqnum: fc.integer({ min: 0, max: 2 ** 31 }),
  request_idx: fc.integer({ min: 0, max: 2 ** 31 }),
  url: anyText,
});

Deno.test("a legacy signature verifies, and changing any signed field or the signature breaks it", async () => {
  const field = fc.constantFrom(
    "cost",
    "endpoint",
    "reqnum",
    "request_idx",
    "url",
    "signature",
  );
  await fc.assert(
    fc.asyncProperty(
      legacyFields,
      field,
      anyText,
      fc.nat(2047),
      async (f, which, text, bit) => {
        const signature = await signText(
          keys.privateKey,
          legacySignatureMessage(f),
        );
        const auth: Record<string, unknown> = { ...f, signature };
        const raw = (a: Record<string, unknown>) =>
          JSON.stringify({ auth_data: a, payload: {} });
        assert.deepEqual(
          await verifier("legacy").verify(auth, raw(auth)),
          { ok: true },
          `unchanged ${JSON.stringify(auth)}`,
        );
        const changed: Record<string, unknown> = { ...auth };
        switch (which) {
          case "cost":
            changed.cost = f.cost + 1;
            break;
          case "reqnum":
          case "request_idx":
            changed[which] = f[which] + 1;
            break;
          case "endpoint":
          case "url":
            fc.pre(text !== f[which]);
            changed[which] = text;
            break;
          case "signature":
            changed.signature = flipBit(signature, bit);
        }
        const r = await verifier("legacy").verify(changed, raw(changed));
        assert.equal(
          r.ok,
          false,
          `verified after changing ${which}: ${JSON.stringify(changed)}`,
        );
        // "any" tries both message shapes, and still refuses it.
        const r2 = await verifier("any").verify(changed, raw(changed));
        assert.equal(r2.ok, false, `"any" verified after changing ${which}`);
      },
    ),
    fcParams(120),
  );
});

Deno.test("a signature is never accepted for a message it was not made for", async () => {
  // Signed over one url, presented with another whose Python JSON differs.
  await fc.assert(
    fc.asyncProperty(anyText, anyText, async (a, b) => {
      fc.pre(urlSignatureMessage(a) !== urlSignatureMessage(b));
      const signature = await signText(keys.privateKey, urlSignatureMessage(a));
      const v = verifier("any");
      const r = await v.verify({
        cost: 1.5,
        endpoint: "",
        reqnum: 0,
        request_idx: 0,
        url: b,
        signature,
      });
      assert.equal(r.ok, false);
    }),
    fcParams(100),
  );
});
