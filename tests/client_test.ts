import assert from "node:assert/strict";
import {
  EdgeworkerClient,
  type EdgeworkerClientOptions,
  EdgeworkerError,
} from "../client.ts";
import {
  fakeClientOptions,
  type FakeVast,
  withFakeVast,
} from "./client_fakes.ts";
import { urlSignatureMessage } from "../dev/control_plane.ts";

function clientFor(
  fake: FakeVast,
  extra: Partial<EdgeworkerClientOptions> = {},
): EdgeworkerClient {
  return new EdgeworkerClient(fakeClientOptions(fake, extra));
}

async function rejectsWith(
  promise: Promise<unknown>,
): Promise<EdgeworkerError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(
      err instanceof EdgeworkerError,
      `expected EdgeworkerError, got ${err}`,
    );
    return err;
  }
  assert.fail("expected a rejection");
}

Deno.test("request polls /route/ keeping request_idx, then posts the envelope", async () => {
  await withFakeVast({ waits: 2 }, async (fake) => {
    const res = await clientFor(fake).request("/echo", { hello: 1 }, {
      cost: 42,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true });

    assert.deepEqual(fake.routeCalls.map((c) => c.body.request_idx), [
      0,
      1,
      1,
    ]);
    for (const call of fake.routeCalls) {
      assert.equal(call.path, "/route/");
      assert.equal(call.authorization, "Bearer key");
      assert.deepEqual(call.body, {
        endpoint: "ep",
        api_key: "key",
        cost: 42,
        request_idx: call.body.request_idx,
      });
    }
    assert.equal(fake.workerCalls.length, 1);
    const { body, authorization, path } = fake.workerCalls[0];
    assert.equal(path, "/echo");
    assert.equal(authorization, "Bearer key");
    assert.deepEqual(Object.keys(body).sort(), [
      "auth_data",
      "payload",
      "session_id",
    ]);
    assert.deepEqual(body.payload, { hello: 1 });
    assert.equal(body.session_id, null);
    const auth = body.auth_data as Record<string, unknown>;
    assert.equal(typeof auth.__request_id, "string");
    assert.deepEqual({ ...auth, __request_id: "x" }, {
      __request_id: "x",
      cost: 42,
      endpoint: "ep",
      reqnum: 1,
      request_idx: 1,
      signature: await fake.cp.sign(urlSignatureMessage(fake.workerUrl)),
      url: fake.workerUrl,
    });
  });
});

Deno.test("request times out while no worker is ready", async () => {
  await withFakeVast({ waits: Infinity }, async (fake) => {
    const started = Date.now();
    const err = await rejectsWith(
      clientFor(fake, { timeoutMs: 300 }).request("/echo", {}),
    );
    const elapsed = Date.now() - started;
    assert.equal(err.code, "timeout");
    assert.equal(
      err.message,
      'Timed out after 0.3 s waiting for a ready worker for endpoint "ep" (last /route/ status: waiting)',
    );
    assert.ok(elapsed >= 290 && elapsed < 800, `elapsed ${elapsed} ms`);
    assert.ok(fake.routeCalls.length >= 3, `${fake.routeCalls.length} polls`);
    assert.ok(
      fake.routeCalls.slice(1).every((c) => c.body.request_idx === 1),
    );
    assert.equal(fake.workerCalls.length, 0);
  });
});

Deno.test("request honours the caller's abort signal while polling", async () => {
  await withFakeVast({ waits: Infinity }, async (fake) => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error("stop")), 100);
    try {
      await assert.rejects(
        clientFor(fake).request("/echo", {}, { signal: controller.signal }),
        /stop/,
      );
    } finally {
      clearTimeout(timer);
    }
  });
});

Deno.test("429 is re-routed with the same request_idx after Retry-After", async () => {
  await withFakeVast({ waits: 0 }, async (fake) => {
    const started = Date.now();
    const res = await clientFor(fake, {
      backoff: { initialMs: 10, maxMs: 1000 },
    }).request("/flaky429", {});
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { n: 2 });
    assert.ok(Date.now() - started >= 90, "Retry-After: 0.1 was not honoured");
    assert.deepEqual(fake.routeCalls.map((c) => c.body.request_idx), [0, 1]);
    assert.equal(fake.workerCalls.length, 2);
  });
});

Deno.test("5xx retries are bounded by maxRetries; the last answer is returned", async () => {
  await withFakeVast({ waits: 0 }, async (fake) => {
    const res = await clientFor(fake, { maxRetries: 2 }).request(
      "/always503",
      {},
    );
    assert.equal(res.status, 503);
    assert.equal(await res.text(), "down");
    assert.equal(fake.workerCalls.length, 3);
    assert.equal(fake.routeCalls.length, 3);
  });
});

Deno.test("retries never run past the overall timeout", async () => {
  await withFakeVast({ waits: 0 }, async (fake) => {
    const client = clientFor(fake, {
      maxRetries: 1000,
      timeoutMs: 250,
      backoff: { initialMs: 20, maxMs: 40 },
    });
    const started = Date.now();
    try {
      const res = await client.request("/always503", {});
      assert.equal(res.status, 503);
      await res.body?.cancel();
    } catch (err) {
      assert.ok(
        err instanceof EdgeworkerError && err.code === "timeout",
        String(err),
      );
    }
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 750, `elapsed ${elapsed} ms`);
    assert.ok(
      fake.workerCalls.length > 1 && fake.workerCalls.length < 30,
      `${fake.workerCalls.length} calls`,
    );
  });
});

Deno.test("other 4xx answers are returned at once, not retried", async () => {
  await withFakeVast({ waits: 0 }, async (fake) => {
    const client = clientFor(fake);
    const res = await client.request("/bad400", {});
    assert.equal(res.status, 400);
    assert.equal(
      ((await res.json()) as { error: { message: string } }).error.message,
      "bad request body",
    );
    const gone = await client.request("/echo", {}, { sessionId: "nope" });
    assert.equal(gone.status, 410);
    assert.deepEqual(await gone.json(), { error: "invalid session" });
    assert.equal(fake.workerCalls.length, 2);
    assert.equal(fake.routeCalls.length, 2);
    assert.equal(fake.workerCalls[1].body.session_id, "nope");
  });
});

Deno.test("worker timeout names the worker", async () => {
  await withFakeVast({ waits: 0 }, async (fake) => {
    const err = await rejectsWith(
      clientFor(fake, { timeoutMs: 200 }).request("/slow", {}),
    );
    assert.equal(err.code, "timeout");
    assert.match(
      err.message,
      /^Timed out after 0\.2 s waiting for a response from worker http:\/\/127\.0\.0\.1:\d+ \(endpoint "ep"\)$/,
    );
  });
});

Deno.test("connection errors are retried, then reported", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  let calls = 0;
  const client = new EdgeworkerClient({
    endpoint: "ep",
    apiKey: "key",
    workerUrl: `http://127.0.0.1:${port}`,
    maxRetries: 2,
    backoff: { initialMs: 5, maxMs: 10 },
    fetch: (input, init) => {
      calls++;
      return fetch(input, init);
    },
  });
  const err = await rejectsWith(client.request("/echo", {}));
  assert.equal(err.code, "network");
  assert.match(
    err.message,
    /Could not reach worker http:\/\/127\.0\.0\.1:\d+ \(endpoint "ep"\) after 3 attempt\(s\)/,
  );
  assert.equal(calls, 3);
});

Deno.test("/route/ refusals: 4xx thrown at once, 5xx retried then thrown", async () => {
  await withFakeVast({ routeStatus: 401 }, async (fake) => {
    const err = await rejectsWith(clientFor(fake).request("/echo", {}));
    assert.deepEqual([err.code, err.status, err.body], [
      "route",
      401,
      "route says no",
    ]);
    assert.equal(fake.routeCalls.length, 1);
  });
  await withFakeVast({ routeStatus: 503 }, async (fake) => {
    const err = await rejectsWith(
      clientFor(fake, { maxRetries: 2 }).request("/echo", {}),
    );
    assert.deepEqual([err.code, err.status], ["route", 503]);
    assert.equal(fake.routeCalls.length, 3);
  });
});

Deno.test("workerUrl skips /route/ and sends unsigned auth_data", async () => {
  await withFakeVast({}, async (fake) => {
    const client = new EdgeworkerClient({
      endpoint: "ep",
      apiKey: "key",
      workerUrl: fake.workerUrl,
    });
    const res = await client.request("/echo", { a: 1 }, { cost: 7 });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.equal(fake.routeCalls.length, 0);
    assert.deepEqual(fake.workerCalls[0].body.auth_data, {
      cost: 7,
      endpoint: "ep",
      reqnum: 1,
      request_idx: 1,
      signature: "",
      url: fake.workerUrl,
    });
  });
});

Deno.test("requestJson parses 2xx and throws status + body otherwise", async () => {
  await withFakeVast({ waits: 1 }, async (fake) => {
    const client = clientFor(fake);
    const out = await client.requestJson<{ choices: { text: string }[] }>(
      "/v1/completions",
      { prompt: "hi" },
    );
    assert.equal(out.choices[0].text, "echo:hi");
    const err = await rejectsWith(client.requestJson("/bad400", {}));
    assert.equal(err.code, "http");
    assert.equal(err.status, 400);
    assert.match(err.body, /bad request body/);
    assert.match(err.message, /HTTP 400/);
  });
});

async function timed(
  events: AsyncIterable<unknown>,
): Promise<{ event: unknown; at: number }[]> {
  const out = [];
  for await (const event of events) out.push({ event, at: Date.now() });
  return out;
}

Deno.test("stream yields SSE events incrementally", async () => {
  await withFakeVast({ waits: 0, gapMs: 80 }, async (fake) => {
    const got = await timed(clientFor(fake).stream("/sse", {}));
    assert.deepEqual(got.map((g) => g.event), [{ i: 0 }, { i: 1 }, { i: 2 }]);
    const spread = got[1].at - got[0].at;
    assert.ok(
      spread >= 120,
      `events 0 and 1 arrived ${spread} ms apart; expected ~160`,
    );
  });
});

Deno.test("stream yields JSON Lines incrementally; break closes the stream", async () => {
  await withFakeVast({ waits: 0, gapMs: 80 }, async (fake) => {
    const client = clientFor(fake);
    const got = await timed(client.stream("/jsonl", {}));
    assert.deepEqual(got.map((g) => g.event), [{ i: 0 }, { i: 1 }, { i: 2 }]);
    assert.ok(got[1].at - got[0].at >= 50 && got[2].at - got[1].at >= 50);
    for await (const event of client.stream("/sse", {})) {
      assert.deepEqual(event, { i: 0 });
      break;
    }
    const err = await rejectsWith((async () => {
      for await (const _ of client.stream("/bad400", {})) {
        assert.fail("no events expected");
      }
    })());
    assert.equal(err.status, 400);
  });
});
