import assert from "node:assert/strict";
import OpenAI from "openai";
import {
  edgeworkerFetch,
  type EdgeworkerFetchOptions,
  estimateOpenAICost,
} from "../client.ts";
import {
  fakeClientOptions,
  type FakeVast,
  withFakeVast,
} from "./client_fakes.ts";

function openaiFor(
  fake: FakeVast,
  extra: Partial<EdgeworkerFetchOptions> = {},
): OpenAI {
  return new OpenAI({
    baseURL: "http://edgeworker.invalid/v1",
    apiKey: "unused",
    fetch: edgeworkerFetch(fakeClientOptions(fake, extra)),
  });
}

/** The OpenAI tests' fake: one `waiting` answer first, tokens 80 ms apart. */
function withFake(fn: (fake: FakeVast) => Promise<void>): Promise<void> {
  return withFakeVast({ waits: 1, gapMs: 80 }, fn);
}

Deno.test("openai: chat completion through edgeworkerFetch", async () => {
  await withFake(async (fake) => {
    const chat = await openaiFor(fake).chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 7,
    });
    assert.equal(chat.choices[0].message.content, "Hello there, friend!");
    assert.equal(
      fake.routeCalls.at(-1)?.body.cost,
      7,
      "cost comes from max_tokens",
    );
    const call = fake.workerCalls[0];
    assert.equal(call.path, "/v1/chat/completions");
    assert.equal(call.authorization, "Bearer key");
    assert.deepEqual(call.body.payload, {
      model: "m",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 7,
    });
  });
});

Deno.test("openai: streaming chat chunks arrive incrementally", async () => {
  await withFake(async (fake) => {
    const stream = await openaiFor(fake).chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "Hi" }],
      stream: true,
    });
    const arrivals: { text: string; at: number }[] = [];
    for await (const chunk of stream) {
      arrivals.push({
        text: chunk.choices[0]?.delta?.content ?? "",
        at: Date.now(),
      });
    }
    assert.equal(arrivals.map((a) => a.text).join(""), "Hello there, friend!");
    assert.equal(arrivals.length, 5);
    const spread = arrivals[4].at - arrivals[0].at;
    assert.ok(
      spread >= 240,
      `chunks arrived within ${spread} ms; expected ~320 (buffered?)`,
    );
    for (let i = 1; i < arrivals.length; i++) {
      assert.ok(
        arrivals[i].at - arrivals[i - 1].at >= 40,
        `gap before chunk ${i}`,
      );
    }
    assert.equal(
      fake.routeCalls.at(-1)?.body.cost,
      100,
      "default cost without max_tokens",
    );
  });
});

Deno.test("openai: text completion", async () => {
  await withFake(async (fake) => {
    const completion = await openaiFor(fake, { cost: 5 }).completions.create({
      model: "m",
      prompt: "abc",
      max_tokens: 300,
    });
    assert.equal(completion.choices[0].text, "echo:abc");
    assert.equal(
      fake.routeCalls.at(-1)?.body.cost,
      5,
      "a fixed cost option wins",
    );
    assert.equal(fake.workerCalls[0].path, "/v1/completions");
  });
});

Deno.test("openai: a 400 from the model is an APIError with status 400", async () => {
  await withFake(async (fake) => {
    const err = await openaiFor(fake).chat.completions.create({
      model: "bad",
      messages: [{ role: "user", content: "Hi" }],
    }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof OpenAI.APIError, `got ${err}`);
    assert.ok(err instanceof OpenAI.BadRequestError);
    assert.equal(err.status, 400);
    assert.match(err.message, /The model `bad` does not exist/);
    assert.equal(fake.workerCalls.length, 1, "4xx must not be retried");
  });
});

Deno.test("openai: no ready worker becomes a 504 APIError, without openai retries", async () => {
  await withFakeVast({ waits: Infinity }, async (fake) => {
    const started = Date.now();
    const err = await openaiFor(fake, { timeoutMs: 200 }).completions.create({
      model: "m",
      prompt: "x",
    }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof OpenAI.APIError, `got ${err}`);
    assert.equal(err.status, 504);
    assert.match(
      err.message,
      /Timed out after 0\.2 s waiting for a ready worker for endpoint "ep"/,
    );
    assert.ok(
      Date.now() - started < 600,
      "openai must not retry on top of edgeworker",
    );
  });
});

Deno.test("estimateOpenAICost reads the token limit", () => {
  assert.equal(estimateOpenAICost({ max_tokens: 12 }), 12);
  assert.equal(estimateOpenAICost({ max_completion_tokens: 30 }), 30);
  assert.equal(estimateOpenAICost({ max_tokens: 0 }, 55), 55);
  assert.equal(estimateOpenAICost({}), 100);
});
