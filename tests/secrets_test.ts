import assert from "node:assert/strict";
import { startControlPlane } from "../dev/control_plane.ts";
import { captureLogs } from "./helpers/logs.ts";
import {
  generateKeys,
  signedAuth,
  withKeyedWorker,
} from "./helpers/signing.ts";
import { post, waitFor } from "./helpers/http.ts";

const ECHO = [{ route: "/echo", allowParallelRequests: true }];

// MASTER_TOKEN, signatures and keys must never reach logs above debug, and
// at debug only shortened.
Deno.test("secrets stay out of the logs", async () => {
  await using logs = await captureLogs();
  const keys = await generateKeys();
  const other = await generateKeys();
  const token = "mtoken-9f8e7d6c5b4a3210";
  await withKeyedWorker(keys, ECHO, async (w) => {
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
  }, { MASTER_TOKEN: token });
});

// Nothing the worker serves may carry MASTER_TOKEN or a signature the
// caller did not send: with the token anyone could call /pyworker/update
// or post reports as this worker.
Deno.test("no secret is served: status, metrics, probes, error bodies, session answers and debug logs", async () => {
  await using logs = await captureLogs();
  await using cp = await startControlPlane();
  const keys = await generateKeys();
  const other = await generateKeys();
  const token = "mtoken-5e4d3c2b1a09f8e7";
  await withKeyedWorker(keys, ECHO, async (w) => {
    const answers: { what: string; text: string }[] = [];
    const send = async (
      what: string,
      route: string,
      init: RequestInit,
      status: number,
    ): Promise<string> => {
      const res = await fetch(w.url + route, init);
      const text = await res.text();
      assert.equal(res.status, status, `${what}: ${text}`);
      answers.push({ what, text });
      return text;
    };
    const postJson = (
      what: string,
      route: string,
      body: unknown,
      status: number,
    ) =>
      send(what, route, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
      }, status);
    // The token is in use: the autoscaler got it.
    const report = await cp.waitFor("status", undefined, 3000);
    assert.equal((report.body as { mtoken: string }).mtoken, token);

    const good = await signedAuth(keys.privateKey);
    const bad = await signedAuth(other.privateKey, undefined, {
      request_idx: 2,
    });
    await postJson("200", "/echo", { auth_data: good, payload: {} }, 200);
    await postJson("401", "/echo", { auth_data: bad, payload: {} }, 401);
    await postJson("422", "/echo", {
      auth_data: { ...good, reqnum: "one" },
      payload: {},
    }, 422);
    await postJson("404", "/nope", { auth_data: good, payload: {} }, 404);
    await send("405", "/echo", { method: "GET" }, 405);
    await postJson("410", "/echo", {
      auth_data: good,
      payload: {},
      session_id: "NoSuchSession",
    }, 410);
    await postJson("413", "/echo", {
      auth_data: good,
      payload: { pad: "x".repeat(10_000) },
    }, 413);
    await send("update 401", "/pyworker/update", {
      method: "POST",
      headers: { authorization: `Bearer ${bad.signature}` },
    }, 401);

    await postJson("create 401", "/session/create", {
      auth_data: bad,
      payload: { lifetime: 30 },
    }, 401);
    const created = JSON.parse(
      await postJson("create", "/session/create", {
        auth_data: good,
        payload: { lifetime: 30 },
      }, 201),
    );
    const id = String(created.session_id);
    const wrong = { ...good, signature: "x" };
    for (const route of ["/session/get", "/session/health", "/session/end"]) {
      await postJson(`${route} 401`, route, {
        session_id: id,
        session_auth: wrong,
      }, 401);
    }
    await postJson("health", "/session/health", {
      session_id: id,
      session_auth: good,
    }, 200);
    // /session/get gives back the auth_data, as Python does: only to a
    // caller who sent that same auth_data, signature included. Not scanned.
    const got = await fetch(`${w.url}/session/get`, {
      method: "POST",
      body: JSON.stringify({ session_id: id, session_auth: good }),
    });
    assert.equal(got.status, 200);
    assert.deepEqual((await got.json()).auth_data, good);
    await postJson("end", "/session/end", {
      session_id: id,
      session_auth: good,
    }, 200);

    await waitFor(
      async () => {
        const res = await fetch(`${w.url}/status`);
        const status = await res.json();
        return status.last_report !== null;
      },
      3000,
      "a report in /status",
    );
    for (const route of ["/status", "/metrics", "/ready", "/health"]) {
      await send(route, route, { method: "GET" }, 200);
    }
    const status = JSON.parse(answers.find((a) => a.what === "/status")!.text);
    assert.equal(status.last_report.id, 4242, "the report is shown");

    const secrets = [token, String(good.signature), String(bad.signature)];
    for (const { what, text } of answers) {
      for (const secret of secrets) {
        assert.ok(!text.includes(secret), `a secret is in the ${what} answer`);
      }
    }
    assert.ok(logs.records.some((r) => r.level === "debug"), "debug logs seen");
    for (const r of logs.records) {
      const text = JSON.stringify([r.message, r.properties]);
      for (const secret of secrets) {
        assert.ok(!text.includes(secret), `a secret is in a ${r.level} log`);
      }
    }
  }, {
    MASTER_TOKEN: token,
    CONTAINER_ID: "4242",
    REPORT_ADDR: cp.url,
    EDGEWORKER_MAX_BODY_BYTES: "8192",
  });
});
