/**
 * Resumable streams end to end: a real worker, the scripted model server,
 * clients that drop their connection and come back on `POST /resume/<id>`.
 */
import { concat } from "../lib/std/bytes.ts";
import assert from "node:assert/strict";
import { concat } from "./chaos/http_wire.ts";
import { assertEnvRefused } from "./helpers/env.ts";
import { EdgeworkerClient, EdgeworkerError } from "../client.ts";
import { ConfigError, parseWorkerConfigYaml } from "../lib/config/file.ts";
import type { WorkerConfig } from "../lib/config/schemas.ts";
import parsePrometheus from "parse-prometheus-text-format";
import { sleep } from "../dev/_async.ts";
import { post, waitFor } from "./helpers/http.ts";
import {
  generateKeys,
  signedAuth,
  withKeyedWorker,
} from "./helpers/signing.ts";
import {
  type Script,
  spacedStream,
  type UpstreamHandle,
} from "./helpers/upstream.ts";
import {
  type Running,
  UNSIGNED_AUTH,
  withUpstreamWorker,
} from "./helpers/worker.ts";

const dec = new TextDecoder();

/** A small seeded generator, so that a trial's cuts can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

/**
 * `POST /gen {n, gap_ms, seed, size}`: `n` SSE events (the same text for
 * every seed), cut into chunks at places the seed picks (inside events,
 * across them), sent `gap_ms` apart.
 */
const gen: Script = ({ path, body, signal }) => {
  if (path !== "/gen") return undefined;
  const b = body as {
    n?: number;
    gap_ms?: number;
    seed?: number;
    pad?: number;
    max_chunk?: number;
    ndjson?: boolean;
  };
  const pad = "x".repeat(b.pad ?? 8);
  let text = "";
  for (let i = 0; i < (b.n ?? 30); i++) {
    const event = `{"i":${i},"text":"tok${i}${pad}"}`;
    text += b.ndjson ? `${event}\n` : `data: ${event}\n\n`;
  }
  if (!b.ndjson) text += "data: [DONE]\n\n";
  const rnd = random(b.seed ?? 1);
  const chunks: string[] = [];
  for (let at = 0; at < text.length;) {
    const len = 1 + Math.floor(rnd() * (b.max_chunk ?? 60));
    chunks.push(text.slice(at, at + len));
    at += len;
  }
  return new Response(spacedStream(chunks, b.gap_ms ?? 1, signal), {
    headers: {
      "content-type": b.ndjson ? "application/x-ndjson" : "text/event-stream",
    },
  });
};

interface Setup {
  handlers?: WorkerConfig["handlers"];
  resumeBuffer?: WorkerConfig["resumeBuffer"];
  env?: Record<string, string>;
}

const RESUMABLE = (seconds: number): WorkerConfig["handlers"] => [
  { route: "/gen", allowParallelRequests: true, resumeSeconds: seconds },
];

function withResumeWorker(
  setup: Setup,
  fn: (w: Running, up: UpstreamHandle) => Promise<void>,
): Promise<void> {
  return withUpstreamWorker(setup.handlers ?? RESUMABLE(5), fn, setup.env, {
    upstream: { script: gen },
    config: { resumeBuffer: setup.resumeBuffer },
  });
}

function auth(n: number): Record<string, unknown> {
  return { ...UNSIGNED_AUTH, reqnum: n, request_idx: n };
}

async function bytesOf(res: Response): Promise<Uint8Array> {
  return new Uint8Array(await res.arrayBuffer());
}

async function status(w: Running): Promise<Record<string, number>> {
  const res = await fetch(`${w.url}/status`);
  return (await res.json()).resumable;
}

/** The `edgeworker_*resum*` figures of `/metrics`, read by a real parser. */
async function resumeMetrics(w: Running): Promise<Record<string, number>> {
  const text = await (await fetch(`${w.url}/metrics`)).text();
  const families = parsePrometheus(text) as {
    name: string;
    metrics: { value: string }[];
  }[];
  return Object.fromEntries(
    families.filter((f) => /resum/.test(f.name)).map((
      f,
    ) => [f.name, Number(f.metrics[0].value)]),
  );
}

/** What a client read before its connection dropped. */
interface Dropped {
  id: string;
  got: Uint8Array;
}

/**
 * Starts a request and drops the connection after `chunks` chunks plus
 * `part` bytes of the next (what a connection that dies mid-chunk leaves).
 */
async function startAndDrop(
  w: Running,
  authData: Record<string, unknown>,
  payload: Record<string, unknown>,
  chunks: number,
  part = 0,
): Promise<Dropped> {
  const abort = new AbortController();
  const res = await post(
    w.url,
    "/gen",
    { auth_data: authData, payload },
    { signal: abort.signal },
  );
  assert.equal(res.status, 200);
  const id = res.headers.get("x-edgeworker-stream-id");
  assert.ok(id, "a resumable stream names its id");
  const reader = res.body!.getReader();
  const got: Uint8Array[] = [];
  for (let i = 0; i <= chunks; i++) {
    const r = await reader.read();
    if (r.done) break;
    got.push(i < chunks ? r.value : r.value.subarray(0, part % r.value.length));
  }
  abort.abort();
  await reader.cancel().catch(() => {});
  return { id, got: concat(got) };
}

function resume(
  w: Running,
  id: string,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<Response> {
  return post(w.url, `/resume/${id}`, body, {
    headers: { "content-type": "application/json", ...headers },
  });
}

Deno.test("100 clients that drop at a random chunk and resume each get the stream byte for byte as an uninterrupted client", async () => {
  await withResumeWorker({}, async (w, up) => {
    const payload = { n: 40, gap_ms: 1, max_chunk: 40 };
    const whole = await post(w.url, "/gen", {
      auth_data: auth(1),
      payload: { ...payload, seed: 7 },
    });
    assert.ok(whole.headers.get("x-edgeworker-stream-id"));
    const reference = await bytesOf(whole);
    const text = dec.decode(reference);
    assert.match(text, /^data: \{"i":0,.*\}\nid: \d+\n\n/);
    // Each id is the byte position of its own line.
    for (const m of text.matchAll(/id: (\d+)\n/g)) {
      assert.equal(m.index, Number(m[1]));
    }

    const rnd = random(2026);
    let resumedMidway = 0;
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(
        Array.from({ length: 10 }, async (_, k) => {
          const trial = batch * 10 + k;
          const seed = trial + 100;
          const dropAt = Math.floor(rnd() * 40);
          const part = Math.floor(rnd() * 1000);
          const waitMs = Math.floor(rnd() * 30);
          const a = auth(trial + 10);
          const { id, got } = await startAndDrop(
            w,
            a,
            { ...payload, seed },
            dropAt,
            part,
          );
          await sleep(waitMs);
          const res = await resume(w, id, { auth_data: a, offset: got.length });
          assert.equal(res.status, 200, await res.clone().text());
          assert.equal(
            res.headers.get("x-edgeworker-resume-offset"),
            String(got.length),
          );
          const rest = await bytesOf(res);
          if (rest.length > 0) resumedMidway++;
          const all = concat([got, rest]);
          assert.equal(
            dec.decode(all),
            text,
            `trial ${trial}: drop after ${dropAt} chunks`,
          );
        }),
      );
    }
    assert.ok(resumedMidway > 80, `only ${resumedMidway} resumes had a rest`);
    const figures = await status(w);
    assert.equal(figures.resumes, 100);
    assert.equal(figures.overflows, 0);
    assert.equal(figures.expired, 0);
    const metrics = await resumeMetrics(w);
    assert.equal(metrics.edgeworker_stream_resumes_total, 100);
    assert.equal(metrics.edgeworker_resumable_streams, figures.streams);
    // Every model call ran to its end: nobody was cut off.
    assert.equal(up.aborted, 0);
    await waitFor(() => w.ledger.pendingFinished().length === 101);
    for (const r of w.ledger.pendingFinished()) {
      assert.equal(r.status, "success", r.detail);
    }
  });
});

Deno.test("Last-Event-ID resumes after that event; a bad one is named", async () => {
  await withResumeWorker({}, async (w) => {
    const payload = { n: 20, gap_ms: 2, seed: 3 };
    const reference = dec.decode(
      await bytesOf(
        await post(w.url, "/gen", { auth_data: auth(1), payload }),
      ),
    );
    const a = auth(2);
    const { id, got } = await startAndDrop(w, a, payload, 12, 5);
    const seen = dec.decode(got);
    const ids = [...seen.matchAll(/id: (\d+)\n/g)];
    assert.ok(ids.length > 0);
    const last = ids[ids.length - 1][1];
    const res = await resume(w, id, { auth_data: a }, {
      "last-event-id": last,
    });
    assert.equal(res.status, 200);
    const rest = dec.decode(await bytesOf(res));
    const upTo = reference.indexOf(`id: ${last}\n`) + `id: ${last}\n\n`.length;
    assert.equal(reference.slice(0, upTo) + rest, reference);

    const bad = await resume(w, id, { auth_data: a }, {
      "last-event-id": String(Number(last) + 1),
    });
    assert.equal(bad.status, 422);
    assert.match((await bad.json()).error, /not an event id/);
  });
});

Deno.test("resume requests that cannot be served get a precise error", async () => {
  await withResumeWorker({}, async (w) => {
    const a = auth(5);
    const { id, got } = await startAndDrop(w, a, { n: 200, gap_ms: 2 }, 3);
    const cases: [Record<string, unknown>, number, RegExp][] = [
      [{}, 422, /field missing/],
      [{ auth_data: "x" }, 422, /expected an object/],
      [{ auth_data: a, offset: -1 }, 422, /integer >= 0/],
      [{ auth_data: a, offset: 1.5 }, 422, /integer >= 0/],
      [{ auth_data: a, offset: 10_000_000 }, 416, /past the/],
    ];
    for (const [body, code, error] of cases) {
      const res = await resume(w, id, body);
      assert.equal(res.status, code, JSON.stringify(body));
      const json = await res.json();
      assert.match(JSON.stringify(json), error);
    }
    const unknown = await resume(w, crypto.randomUUID(), { auth_data: a });
    assert.equal(unknown.status, 404);
    assert.match((await unknown.json()).error, /no resumable stream/);
    // The stream is still there for its own client.
    const res = await resume(w, id, { auth_data: a, offset: got.length });
    assert.equal(res.status, 200);
    await res.body!.cancel();
    // Without resumeSeconds a stream has no id.
  });
});

Deno.test("a reconnect with another request's signed auth_data is refused; the stream's own succeeds", async () => {
  const keys = await generateKeys();
  const url = "https://203.0.113.5:41234";
  const handlers = [{
    route: "/gen",
    upstreamRoute: "/stream",
    allowParallelRequests: true,
    resumeSeconds: 5,
  }];
  await withKeyedWorker(keys, handlers, async (w) => {
    const mine = await signedAuth(keys.privateKey, url);
    const other = await signedAuth(keys.privateKey, url, { reqnum: 2 });
    const payload = { chunks: 60, gap_ms: 3 };
    const { id, got } = await startAndDrop(w, mine, payload, 4);
    // The other request is real and signed: its own stream works.
    const theirs = await post(w.url, "/gen", { auth_data: other, payload });
    assert.equal(theirs.status, 200);
    await theirs.body!.cancel();
    for (
      const stranger of [other, { ...mine, signature: other.signature + "x" }, {
        ...mine,
        reqnum: 9,
      }]
    ) {
      const res = await resume(w, id, {
        auth_data: stranger,
        offset: got.length,
      });
      assert.equal(res.status, 401);
      assert.match((await res.json()).error, /auth_data differs/);
    }
    const res = await resume(w, id, { auth_data: mine, offset: got.length });
    assert.equal(res.status, 200);
    const all = dec.decode(concat([got, await bytesOf(res)]));
    assert.match(
      all,
      /data: \{"i":59\}\nid: \d+\n\ndata: \[DONE\]\nid: \d+\n\n$/,
    );
    assert.equal(all.match(/^data: \{"i":\d+\}$/gm)?.length, 60);
  });
});

Deno.test("without a reconnect the model call goes on for resumeSeconds, then is aborted and counted as cancelled", async () => {
  await withResumeWorker({ handlers: RESUMABLE(0.4) }, async (w, up) => {
    const { id } = await startAndDrop(w, auth(1), { n: 400, gap_ms: 5 }, 2);
    const left = Date.now();
    // Today's behaviour would abort within milliseconds: here it goes on.
    await sleep(200);
    assert.equal(up.aborted, 0, "model call aborted before resumeSeconds");
    await waitFor(() => up.aborted === 1, 3000, "model call aborted");
    const after = Date.now() - left;
    assert.ok(after >= 350 && after < 2000, `aborted after ${after} ms`);
    await waitFor(() => w.ledger.pendingFinished().length === 1);
    const rec = w.ledger.pendingFinished()[0];
    assert.equal(rec.status, "cancelled");
    assert.equal(rec.httpStatus, 499);
    assert.match(rec.detail ?? "", /did not resume within 0.4 s/);
    assert.equal(w.ledger.window().cancelled, 100);
    const res = await resume(w, id, { auth_data: auth(1) });
    assert.equal(res.status, 404);
    await res.body?.cancel();
    assert.equal((await status(w)).expired, 1);
    assert.equal((await resumeMetrics(w)).edgeworker_resume_expired_total, 1);
  });
});

Deno.test("a handler without resumeSeconds keeps cancel-on-disconnect and sends no stream id", async () => {
  const handlers = [{ route: "/gen", allowParallelRequests: true }];
  await withResumeWorker({ handlers }, async (w, up) => {
    const abort = new AbortController();
    const res = await post(w.url, "/gen", {
      auth_data: auth(1),
      payload: { n: 400, gap_ms: 5 },
    }, { signal: abort.signal });
    assert.equal(res.headers.get("x-edgeworker-stream-id"), null);
    const reader = res.body!.getReader();
    await reader.read();
    abort.abort();
    await reader.cancel().catch(() => {});
    await waitFor(() => up.aborted === 1, 1000, "prompt abort");
  });
});

Deno.test("under 100 dropped streams the buffers stay within their limits: each overflow ends with an error event", async () => {
  const streamBytes = 16 * 1024;
  const totalBytes = 256 * 1024;
  await withResumeWorker({
    handlers: RESUMABLE(3),
    env: {
      EDGEWORKER_RESUME_STREAM_BYTES: String(streamBytes),
      EDGEWORKER_RESUME_TOTAL_BYTES: String(totalBytes),
    },
  }, async (w) => {
    // ~37 KB per stream, produced while nobody reads.
    const payload = { n: 150, gap_ms: 1, pad: 200, max_chunk: 500 };
    // A client that stays gets it all: only an absent one is bounded.
    const reference = dec.decode(
      await bytesOf(
        await post(w.url, "/gen", { auth_data: auth(1000), payload }),
      ),
    );
    assert.ok(reference.length > 2 * streamBytes);
    const dropped = await Promise.all(
      Array.from(
        { length: 100 },
        (_, i) => startAndDrop(w, auth(i + 1), { ...payload, seed: i + 1 }, 1),
      ),
    );
    await waitFor(
      () => w.ledger.inFlightCount === 0,
      8000,
      "every model call stopped",
    );
    const figures = await status(w);
    assert.equal(figures.overflows, 100);
    assert.ok(figures.peakBytes <= totalBytes, `peak ${figures.peakBytes}`);
    const metrics = await resumeMetrics(w);
    assert.equal(metrics.edgeworker_resume_overflows_total, 100);
    assert.ok(metrics.edgeworker_resume_buffer_bytes <= totalBytes);
    assert.ok(figures.bufferedBytes <= totalBytes);
    let errorEvents = 0;
    let gone = 0;
    let reclaimed = 0;
    await Promise.all(dropped.map(async ({ id, got }, i) => {
      const res = await resume(w, id, {
        auth_data: auth(i + 1),
        offset: got.length,
      });
      if (res.status === 404) {
        // An ended stream's buffer made room for live ones.
        await res.body?.cancel();
        reclaimed++;
        return;
      }
      if (res.status === 410) {
        // Older bytes made room for the newer ones while it was away.
        assert.match((await res.json()).error, /no longer buffered/);
        gone++;
        return;
      }
      assert.equal(res.status, 200);
      const rest = dec.decode(await bytesOf(res));
      // What came is the stream in order up to the overflow, then the error.
      const all = dec.decode(got) + rest;
      const before = all.slice(0, all.lastIndexOf("event: error"));
      assert.ok(reference.startsWith(before.replace(/\n+$/, "")));
      assert.ok(rest.length <= streamBytes + 300, `${rest.length} bytes`);
      const tail = rest.slice(rest.lastIndexOf("event: error"));
      assert.match(
        tail,
        /^event: error\ndata: \{"error":\{"message":"resume buffer full .*","type":"resume_buffer_overflow"\}\}\n\n$/,
      );
      errorEvents++;
    }));
    assert.equal(errorEvents + gone + reclaimed, 100);
    assert.ok(errorEvents > 0);
    await waitFor(() => w.ledger.pendingFinished().length === 101);
    for (const r of w.ledger.pendingFinished().slice(1)) {
      assert.equal(r.status, "cancelled");
      assert.match(r.detail ?? "", /resume buffer full/);
    }
  });
});

/**
 * A fetch whose first `drops.length` answers from `route` break off after
 * `drops[i]` chunks: the real body is cancelled, so the worker sees its
 * client's connection close, and the reader gets a network error.
 */
function droppingFetch(route: string, drops: number[]): typeof fetch {
  let n = 0;
  return async (input, init) => {
    const res = await fetch(input, init);
    const url = String(input instanceof Request ? input.url : input);
    const path = new URL(url).pathname;
    if (!(path === route || path.startsWith("/resume/"))) return res;
    const after = drops[n++];
    if (after === undefined || !res.body) return res;
    const reader = res.body.getReader();
    let seen = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (seen++ === after) {
          await reader.cancel();
          controller.error(
            new TypeError("error reading a body from connection"),
          );
          return;
        }
        const r = await reader.read();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      },
      cancel: (reason) => reader.cancel(reason),
    });
    return new Response(body, { status: res.status, headers: res.headers });
  };
}

/**
 * A client calling `w` directly (no `/route/`), its connections to `/gen`
 * and `/resume/` dropped after the chunks `drops` counts, `backoffMs`
 * between resumes.
 */
function droppedClient(
  w: Running,
  drops: number[],
  backoffMs = [5, 20],
): EdgeworkerClient {
  return new EdgeworkerClient({
    endpoint: "t",
    apiKey: "",
    workerUrl: w.url,
    backoff: { initialMs: backoffMs[0], maxMs: backoffMs[1] },
    fetch: droppingFetch("/gen", drops),
  });
}

Deno.test("EdgeworkerClient resumes a dropped stream by itself: the caller reads it whole", async () => {
  await withResumeWorker({}, async (w) => {
    const payload = { n: 40, gap_ms: 2, seed: 11 };
    const plain = new EdgeworkerClient({
      endpoint: "t",
      apiKey: "",
      workerUrl: w.url,
    });
    const expected = [];
    for await (const e of plain.stream("/gen", payload)) expected.push(e);
    assert.equal(expected.length, 40);

    // Dropped twice: on the first connection and again on the resumed one.
    const client = droppedClient(w, [7, 9]);
    const events = [];
    for await (const e of client.stream("/gen", payload)) events.push(e);
    assert.deepEqual(events, expected);

    const bytesClient = droppedClient(w, [3]);
    const reference = await bytesOf(await plain.request("/gen", payload));
    const resumed = await bytesOf(await bytesClient.request("/gen", payload));
    assert.equal(dec.decode(resumed), dec.decode(reference));
    assert.equal((await status(w)).resumes, 3);
  });
});

Deno.test("EdgeworkerClient reports a stream it could not resume in time as an error naming the stream", async () => {
  await withResumeWorker({ handlers: RESUMABLE(0.1) }, async (w) => {
    const client = droppedClient(w, [2], [600, 600]);
    const res = await client.request("/gen", { n: 300, gap_ms: 5 });
    const err = await res.arrayBuffer().then(() => undefined, (e) => e);
    assert.ok(err instanceof EdgeworkerError, String(err));
    assert.equal(err.code, "http");
    assert.equal(err.status, 404);
    assert.match(err.message, /Resuming stream [0-9a-f-]+ at byte \d+/);
  });
});

Deno.test("a JSON Lines stream resumes at a byte offset and gets no id lines", async () => {
  await withResumeWorker({}, async (w) => {
    const payload = { n: 50, gap_ms: 1, ndjson: true, seed: 5 };
    const reference = dec.decode(
      await bytesOf(
        await post(w.url, "/gen", { auth_data: auth(1), payload }),
      ),
    );
    assert.doesNotMatch(reference, /id: /);
    assert.equal(reference.split("\n").length, 51);
    const a = auth(2);
    const { id, got } = await startAndDrop(w, a, payload, 9, 3);
    const res = await resume(w, id, { auth_data: a, offset: got.length });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/x-ndjson");
    assert.equal(dec.decode(concat([got, await bytesOf(res)])), reference);
    const bad = await resume(w, id, { auth_data: a }, { "last-event-id": "5" });
    assert.equal(bad.status, 422);
    assert.match((await bad.json()).error, /not SSE/);
  });
});

Deno.test("resumeSeconds and resumeBuffer are checked, and their problems named", () => {
  const base = "modelServerUrl: http://127.0.0.1:1\n";
  const bad = (yaml: string): string[] => {
    try {
      parseWorkerConfigYaml(base + yaml);
    } catch (e) {
      if (e instanceof ConfigError) return [...e.problems];
      throw e;
    }
    return [];
  };
  assert.match(
    bad("handlers: [{ route: /a, resumeSeconds: -1 }]").join(),
    /handlers\[0\]\.resumeSeconds/,
  );
  assert.match(
    bad(
      "handlers: [{ route: /a }]\nresumeBuffer: { streamBytes: 10, totalBytes: 5 }",
    ).join(),
    /resumeBuffer\.streamBytes: expected streamBytes <= totalBytes/,
  );
  assert.match(
    bad("handlers: [{ route: /a }]\nresumeBuffer: { streamBytes: 1.5 }").join(),
    /resumeBuffer\.streamBytes/,
  );
  const ok = parseWorkerConfigYaml(base + "handlers: [{ route: /a }]");
  assert.deepEqual(ok.resumeBuffer, {
    streamBytes: 2 * 1024 * 1024,
    totalBytes: 64 * 1024 * 1024,
  });
  assert.equal(ok.handlers[0].resumeSeconds, undefined);
  assertEnvRefused(
    { EDGEWORKER_RESUME_TOTAL_BYTES: "lots" },
    "EDGEWORKER_RESUME_TOTAL_BYTES",
  );
});

Deno.test("a newer resume cuts an older connection off; an ended stream stays resumable for its last bytes", async () => {
  await withResumeWorker({}, async (w) => {
    const a = auth(1);
    const { id, got } = await startAndDrop(w, a, { n: 300, gap_ms: 3 }, 2);
    const first = await resume(w, id, { auth_data: a, offset: got.length });
    assert.equal(first.status, 200);
    const reader = first.body!.getReader();
    const more = (await reader.read()).value!;
    const second = await resume(w, id, {
      auth_data: a,
      offset: got.length + more.length,
    });
    assert.equal(second.status, 200);
    // The older connection breaks off (possibly after what was under way).
    let broke: unknown;
    try {
      while (!(await reader.read()).done);
    } catch (e) {
      broke = e;
    }
    assert.ok(broke, "the older connection went on");
    const rest = await bytesOf(second);
    const all = dec.decode(concat([got, more, rest]));
    assert.match(
      all,
      /data: \{"i":299,.*\}\nid: \d+\n\ndata: \[DONE\]\nid: \d+\n\n$/,
    );
    assert.equal(all.match(/^data: \{"i":\d+/gm)?.length, 300);

    // Read to its end, the stream can still give its last bytes again.
    const done = await post(w.url, "/gen", {
      auth_data: auth(2),
      payload: { n: 5 },
    });
    const whole = await bytesOf(done);
    const id2 = done.headers.get("x-edgeworker-stream-id")!;
    const tail = await resume(w, id2, {
      auth_data: auth(2),
      offset: whole.length - 10,
    });
    assert.equal(tail.status, 200);
    assert.deepEqual(await bytesOf(tail), whole.subarray(whole.length - 10));
    const end = await resume(w, id2, {
      auth_data: auth(2),
      offset: whole.length,
    });
    assert.equal((await bytesOf(end)).length, 0);
  });
});
