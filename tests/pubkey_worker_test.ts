import assert from "node:assert/strict";
import { startControlPlane } from "../dev/control_plane.ts";
import { startUpstream } from "./helpers/upstream.ts";
import { startWorker } from "./helpers/worker.ts";
import { waitFor } from "./helpers/http.ts";

Deno.test("a garbage public key is the worker's error_msg, sent to the autoscaler", async () => {
  await using cp = await startControlPlane();
  const up = startUpstream();
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/key.pem`,
    "-----BEGIN PUBLIC KEY-----\nnot a key\n",
  );
  const w = await startWorker({
    modelServerUrl: up.url,
    handlers: [{ route: "/echo", allowParallelRequests: true }],
  }, {
    UNSECURED: "false",
    EDGEWORKER_PUBKEY_FILE: `${dir}/key.pem`,
    REPORT_ADDR: cp.url,
  });
  try {
    await waitFor(() => w.lifecycle.state === "error", 3000, "error state");
    assert.match(
      w.lifecycle.errorMsg,
      /public key .*key\.pem: no PEM block found/,
    );
    const ready = await fetch(`${w.url}/ready`);
    assert.equal(ready.status, 503);
    assert.match((await ready.json()).error_msg, /public key/);
    const report = await cp.waitFor(
      "status",
      (b) => /public key/.test(String((b as { error_msg: string }).error_msg)),
      3000,
    );
    assert.equal(
      (report.body as { url: string }).url.startsWith("http://"),
      true,
    );
  } finally {
    await w.stop();
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});
