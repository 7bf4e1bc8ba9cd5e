import assert from "node:assert/strict";
import { captureLogs } from "./helpers/logs.ts";
import {
  generateKeys,
  signedAuth,
  writePubkeyFile,
} from "./helpers/signing.ts";
import { startUpstream } from "./helpers/upstream.ts";
import { post, startWorker, waitFor } from "./helpers/worker.ts";

// MASTER_TOKEN, signatures and keys must never reach logs above debug, and
// at debug only shortened.
Deno.test("secrets stay out of the logs", async () => {
  await using logs = await captureLogs();
  const keys = await generateKeys();
  const other = await generateKeys();
  const up = startUpstream();
  const dir = await Deno.makeTempDir();
  const token = "mtoken-9f8e7d6c5b4a3210";
  const w = await startWorker({
    modelServerUrl: up.url,
    handlers: [{ route: "/echo", allowParallelRequests: true }],
  }, {
    UNSECURED: "false",
    MASTER_TOKEN: token,
    EDGEWORKER_PUBKEY_FILE: await writePubkeyFile(dir, keys.publicPem),
  });
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const good = await signedAuth(keys.privateKey);
    const bad = await signedAuth(other.privateKey);
    for (const auth of [good, bad]) {
      const res = await post(
        w.url,
        "/echo",
        JSON.stringify({ auth_data: auth, payload: {} }),
      );
      await res.body?.cancel();
    }
    const update = await fetch(`${w.url}/pyworker/update`, {
      method: "POST",
      headers: { authorization: `Bearer not-${token}` },
    });
    await update.body?.cancel();
    assert.equal(update.status, 401);

    const secrets = [token, String(good.signature), String(bad.signature)];
    const keyBody = keys.publicPem.split("\n")[1];
    const rendered = logs.records.map((r) => ({
      level: r.level,
      text: JSON.stringify([r.message, r.properties]),
    }));
    assert.ok(
      rendered.some((r) =>
        r.level === "debug" && r.text.includes("Signature rejected")
      ),
      "the rejected signature is logged at debug",
    );
    for (const r of rendered) {
      for (const secret of secrets) {
        assert.ok(
          !r.text.includes(secret),
          `a secret is in a ${r.level} log line`,
        );
      }
      if (r.level !== "debug") {
        assert.ok(!r.text.includes(keyBody), "key in a log line");
      }
    }
  } finally {
    await w.shutdown();
    await up.close();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(w.dir, { recursive: true });
  }
});
