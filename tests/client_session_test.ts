import assert from "node:assert/strict";
import { EdgeworkerClient, EdgeworkerError } from "../client.ts";
import { fakeClientOptions, withFakeVast } from "./client_fakes.ts";

Deno.test("sessions: create, request without /route/, end, then closed", async () => {
  await withFakeVast({ waits: 1 }, async (fake) => {
    const client = new EdgeworkerClient(fakeClientOptions(fake));
    const session = await client.createSession({
      cost: 50,
      lifetime: 30,
      onCloseRoute: "/cb",
      onClosePayload: { a: 1 },
    });
    assert.equal(session.id, "sess0");
    assert.equal(session.url, fake.workerUrl);
    assert.equal(session.expiration, 1e10);
    assert.equal(session.closed, false);
    assert.equal(fake.routeCalls.at(-1)?.body.cost, 50);
    const create = fake.workerCalls[0];
    assert.equal(create.path, "/session/create");
    assert.deepEqual(create.body.payload, {
      lifetime: 30,
      on_close_route: "/cb",
      on_close_payload: { a: 1 },
    });
    assert.deepEqual(session.authData, create.body.auth_data);

    const routed = fake.routeCalls.length;
    const res = await session.request("/echo", { x: 1 });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    const out = await session.requestJson("/v1/completions", { prompt: "s" });
    assert.equal(
      (out as { choices: { text: string }[] }).choices[0].text,
      "echo:s",
    );
    assert.equal(
      fake.routeCalls.length,
      routed,
      "session requests must skip /route/",
    );
    for (const call of fake.workerCalls.slice(1)) {
      assert.equal(call.body.session_id, "sess0");
      assert.deepEqual(call.body.auth_data, session.authData);
    }

    await session.end();
    assert.equal(session.closed, true);
    assert.equal(fake.sessionEnds.length, 1);
    assert.deepEqual(fake.sessionEnds[0].body, {
      session_id: "sess0",
      session_auth: session.authData,
    });
    await session.end(); // idempotent, no second call
    assert.equal(fake.sessionEnds.length, 1);
    await assert.rejects(
      session.request("/echo", {}),
      (err) => err instanceof EdgeworkerError && err.code === "session_closed",
    );
  });
});

Deno.test("sessions: a 410 from the worker closes the session", async () => {
  await withFakeVast({ waits: 0 }, async (fake) => {
    const client = new EdgeworkerClient(fakeClientOptions(fake));
    {
      await using session = await client.createSession({ lifetime: 5 });
      fake.dropSessions();
      const res = await session.request("/echo", {});
      assert.equal(res.status, 410);
      assert.deepEqual(await res.json(), { error: "invalid session" });
      assert.equal(session.closed, true);
      await assert.rejects(
        session.requestJson("/echo", {}),
        (err) => err instanceof EdgeworkerError && err.status === 410,
      );
      const calls = fake.workerCalls.length;
      await assert.rejects(async () => {
        for await (const _ of session.stream("/sse", {})) assert.fail("closed");
      }, EdgeworkerError);
      assert.equal(fake.workerCalls.length, calls);
    }
    // `await using` ran end() on the closed session: no /session/end call.
    assert.equal(fake.sessionEnds.length, 0);
  });
});
