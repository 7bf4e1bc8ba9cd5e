/**
 * What unauthenticated requests can pin in memory: `auth_data` fields are
 * bounded (422 naming the field), and the signature cache keeps fixed-size
 * digests of valid results only.
 */
import assert from "node:assert/strict";
import type { WorkerConfig } from "../lib/config/schemas.ts";
import { AUTH_DATA_LIMITS } from "../lib/http/envelope.ts";
import {
  generateKeys,
  signedAuth,
  writePubkeyFile,
} from "./helpers/signing.ts";
import { post, withUpstreamWorker } from "./helpers/worker.ts";

const KEYS = await generateKeys();
const HANDLERS: WorkerConfig["handlers"] = [
  { route: "/echo", allowParallelRequests: true, workload: () => 10 },
];

Deno.test("an over-long auth_data field gets 422 naming it, reaches nothing, and the worker keeps serving", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-limits-" });
  try {
    await withUpstreamWorker(HANDLERS, async (w, up) => {
      const longUrl = "http://w/" + "\x7f".repeat(256 * 1024);
      const cases: [string, Record<string, unknown>, string][] = [
        [
          "url",
          { url: longUrl },
          `longer than ${AUTH_DATA_LIMITS.url} characters`,
        ],
        [
          "endpoint",
          { endpoint: "e".repeat(AUTH_DATA_LIMITS.endpoint + 1) },
          `longer than ${AUTH_DATA_LIMITS.endpoint} characters`,
        ],
        [
          "signature",
          { signature: "A".repeat(AUTH_DATA_LIMITS.signature + 4) },
          `longer than ${AUTH_DATA_LIMITS.signature} characters`,
        ],
      ];
      for (const [field, override, message] of cases) {
        const auth = { ...await signedAuth(KEYS.privateKey), ...override };
        const res = await post(
          w.url,
          "/echo",
          JSON.stringify({ auth_data: auth, payload: {} }),
        );
        assert.equal(res.status, 422, field);
        assert.deepEqual(await res.json(), {
          auth_data: { [field]: message },
        });
      }
      // A number written with more digits than the limit.
      const auth = JSON.stringify(await signedAuth(KEYS.privateKey)).replace(
        '"reqnum":1',
        `"reqnum":${"7".repeat(AUTH_DATA_LIMITS.number + 1)}`,
      );
      const res = await post(
        w.url,
        "/echo",
        `{"auth_data": ${auth}, "payload": {}}`,
      );
      assert.equal(res.status, 422);
      assert.deepEqual(await res.json(), {
        auth_data: {
          reqnum: `number longer than ${AUTH_DATA_LIMITS.number} characters`,
        },
      });
      assert.equal(up.bodies.length, 0);
      // At the limit a signed url is served.
      const atLimit = "http://w/" + "u".repeat(AUTH_DATA_LIMITS.url - 9);
      const ok = await post(
        w.url,
        "/echo",
        JSON.stringify({
          auth_data: await signedAuth(KEYS.privateKey, atLimit),
          payload: { n: 1 },
        }),
      );
      assert.equal(ok.status, 200, await ok.clone().text());
      await ok.body?.cancel();
      assert.deepEqual(up.bodies, [{ n: 1 }]);
    }, {
      UNSECURED: "false",
      EDGEWORKER_PUBKEY_FILE: await writePubkeyFile(dir, KEYS.publicPem),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("2000 invalid and 300 valid requests with 24 KiB messages leave under 4 MB on the heap", async () => {
  // Before the fix the cache kept each message whole: about 50 MB here.
  const probe = new URL("./helpers/verifier_heap.ts", import.meta.url);
  const config = new URL("../deno.json", import.meta.url);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      `--config=${config.pathname}`,
      probe.pathname,
      "2000",
      "300",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const { retainedBytes } = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.ok(
    retainedBytes < 4 * 1024 * 1024,
    `the verifier kept ${(retainedBytes / 1e6).toFixed(1)} MB`,
  );
});
