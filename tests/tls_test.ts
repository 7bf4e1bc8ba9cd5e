/**
 * USE_SSL: the worker serves HTTPS with a certificate made here by the
 * openssl CLI, and refuses to start with a clear message when the files
 * are missing or not PEM.
 */
import assert from "node:assert/strict";
import type { WorkerConfig } from "../lib/config/schemas.ts";
import { Worker } from "../lib/worker/worker.ts";
import { startUpstream } from "./helpers/upstream.ts";
import { envelope, FAST } from "./helpers/worker.ts";
import { waitFor } from "./helpers/http.ts";
import { makeCert } from "./helpers/tls.ts";

const HANDLERS: WorkerConfig["handlers"] = [
  { route: "/echo", allowParallelRequests: true },
];

function baseEnv(dir: string): Record<string, string> {
  return {
    UNSECURED: "true",
    USE_SSL: "true",
    EDGEWORKER_HOST: "127.0.0.1",
    EDGEWORKER_BENCHMARK_FILE: `${dir}/.has_benchmark`,
    EDGEWORKER_UPDATE_FILE: `${dir}/.force_update`,
    EDGEWORKER_DRAIN_SECONDS: "2",
  };
}

/** Starts a worker that is expected to fail; returns the error message. */
async function startFails(
  env: Record<string, string>,
  modelServerUrl = "http://127.0.0.1:9",
): Promise<string> {
  const worker = new Worker({ modelServerUrl, handlers: HANDLERS });
  const err = await worker.start({
    env,
    port: 0,
    httpPort: false,
    timings: FAST,
  }).then(
    async (w) => {
      await w.shutdown();
      throw new Error("start() succeeded");
    },
    (e: unknown) => e,
  );
  assert.ok(err instanceof Error);
  return err.message;
}

Deno.test("USE_SSL=true serves HTTPS with the configured certificate", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-tls-" });
  const up = startUpstream();
  const { cert, key, pem } = await makeCert(dir);
  const client = Deno.createHttpClient({ caCerts: [pem] });
  const w = await new Worker({ modelServerUrl: up.url, handlers: HANDLERS })
    .start({
      env: {
        ...baseEnv(dir),
        EDGEWORKER_TLS_CERT: cert,
        EDGEWORKER_TLS_KEY: key,
      },
      port: 0,
      httpPort: false,
      timings: FAST,
    });
  try {
    assert.match(w.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const res = await fetch(`${w.url}/echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: envelope({ over: "tls" }),
      client,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { received: { over: "tls" } });
    assert.deepEqual(up.bodies, [{ over: "tls" }]);

    // Without trusting the certificate the client refuses: it really is
    // the certificate made above.
    await assert.rejects(fetch(`${w.url}/health`));
    // And plain HTTP is not served on that port.
    await assert.rejects(async () => {
      const plain = await fetch(`http://127.0.0.1:${w.port}/health`);
      await plain.body?.cancel();
    });
  } finally {
    await w.shutdown();
    client.close();
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * start() with TLS from `certFile` and `keyFile` fails; its message names
 * `named` (the file at fault) and is returned.
 */
async function failsNaming(
  dir: string,
  certFile: string,
  keyFile: string,
  named: string,
): Promise<string> {
  const msg = await startFails({
    ...baseEnv(dir),
    EDGEWORKER_TLS_CERT: certFile,
    EDGEWORKER_TLS_KEY: keyFile,
  });
  assert.ok(msg.includes(named), msg);
  return msg;
}

Deno.test("USE_SSL=true with a missing certificate file: start() rejects naming the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-tls-" });
  try {
    const { cert, key } = await makeCert(dir);
    const missing = `${dir}/nope/instance.crt`;
    assert.match(await failsNaming(dir, missing, key, missing), /certificate/);
    const missingKey = `${dir}/nope/instance.key`;
    await failsNaming(dir, cert, missingKey, missingKey);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("USE_SSL=true with a certificate that is not PEM: start() says so", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-tls-" });
  try {
    const { cert, key } = await makeCert(dir);
    const garbage = `${dir}/garbage.crt`;
    await Deno.writeTextFile(garbage, "this is not a certificate\n");
    assert.match(
      await failsNaming(dir, garbage, key, garbage),
      /PEM certificate/,
    );

    // Key and certificate swapped: the key file holds no private key.
    assert.match(await failsNaming(dir, cert, cert, cert), /private key/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Deno rejects some PEM files only when it serves (damaged DER, a key of
// another certificate): the error must still name the TLS files.
Deno.test({
  name:
    "USE_SSL=true with PEM files Deno cannot use: start() names the TLS files",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "edgeworker-tls-" });
    try {
      const { pem, cert, key } = await makeCert(dir);
      const corrupt = `${dir}/corrupt.crt`;
      // Valid armour, damaged DER inside.
      const lines = pem.split("\n");
      lines[3] = "A".repeat(lines[3].length);
      await Deno.writeTextFile(corrupt, lines.join("\n"));
      const msg = await startFails({
        ...baseEnv(dir),
        EDGEWORKER_TLS_CERT: corrupt,
        EDGEWORKER_TLS_KEY: key,
      });
      assert.ok(msg.includes(corrupt), msg);

      // A key that belongs to another certificate.
      const other = await makeCert(await Deno.makeTempDir({ dir }));
      const mismatch = await startFails({
        ...baseEnv(dir),
        EDGEWORKER_TLS_CERT: cert,
        EDGEWORKER_TLS_KEY: other.key,
      });
      assert.ok(
        mismatch.includes(cert) && mismatch.includes(other.key),
        mismatch,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
