/**
 * `POST /pyworker/update` through a real worker: the master token guards
 * the marker file that asks the start script to reinstall.
 */
import assert from "node:assert/strict";
import { type Running, withUpstreamWorker } from "./helpers/worker.ts";

const TOKEN = "master-token-0123456789abcdef";

function withWorker(
  env: Record<string, string>,
  fn: (w: Running, file: string) => Promise<void>,
): Promise<void> {
  return withUpstreamWorker(
    [{ route: "/echo", allowParallelRequests: true }],
    (w) => fn(w, env.EDGEWORKER_UPDATE_FILE ?? `${w.dir}/.force_update`),
    env,
  );
}

async function update(
  w: Running,
  authorization?: string,
): Promise<{ status: number; json: unknown }> {
  const headers: Record<string, string> = {};
  if (authorization !== undefined) headers.authorization = authorization;
  const res = await fetch(`${w.url}/pyworker/update`, {
    method: "POST",
    headers,
  });
  return { status: res.status, json: await res.json() };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

Deno.test("the master token as a Bearer header writes the update file", async () => {
  await withWorker({ MASTER_TOKEN: TOKEN }, async (w, file) => {
    assert.equal(await exists(file), false);
    const res = await update(w, `Bearer ${TOKEN}`);
    assert.deepEqual(res, { status: 200, json: { ok: true } });
    assert.equal(await Deno.readTextFile(file), "");
  });
});

Deno.test("the raw token without 'Bearer ' is accepted too, as Python does", async () => {
  await withWorker({ MASTER_TOKEN: TOKEN }, async (w, file) => {
    const res = await update(w, TOKEN);
    assert.deepEqual(res, { status: 200, json: { ok: true } });
    assert.equal(await exists(file), true);
  });
});

Deno.test("a wrong or missing token gets 401 and writes nothing", async () => {
  await withWorker({ MASTER_TOKEN: TOKEN }, async (w, file) => {
    for (
      const header of [
        "Bearer wrong",
        `Bearer ${TOKEN}x`,
        `Bearer ${TOKEN.slice(0, -1)}`,
        `bearer ${TOKEN}`,
        `Bearer  ${TOKEN}`,
        "",
        undefined,
      ]
    ) {
      const res = await update(w, header);
      assert.deepEqual(
        res,
        { status: 401, json: { error: "unauthorized" } },
        String(header),
      );
    }
    assert.equal(await exists(file), false);
  });
});

Deno.test("an empty MASTER_TOKEN disables the route: 403 even with an empty header", async () => {
  await withWorker({ MASTER_TOKEN: "" }, async (w, file) => {
    for (const header of ["", "Bearer ", undefined]) {
      const res = await update(w, header);
      assert.equal(res.status, 403, String(header));
      assert.match(
        (res.json as { error: string }).error,
        /MASTER_TOKEN is empty/,
      );
    }
    assert.equal(await exists(file), false);
  });
});

Deno.test("a file that cannot be written gets 500 naming the failure", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-update-" });
  const file = `${dir}/missing-dir/.force_update`;
  try {
    await withWorker(
      { MASTER_TOKEN: TOKEN, EDGEWORKER_UPDATE_FILE: file },
      async (w) => {
        const res = await update(w, `Bearer ${TOKEN}`);
        assert.equal(res.status, 500);
        assert.match(
          (res.json as { error: string }).error,
          /^failed to write file: /,
        );
        assert.equal(await exists(file), false);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("GET /pyworker/update gets 405", async () => {
  await withWorker({ MASTER_TOKEN: TOKEN }, async (w, file) => {
    const res = await fetch(`${w.url}/pyworker/update`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get("allow"), "POST");
    await res.body?.cancel();
    assert.equal(await exists(file), false);
  });
});
