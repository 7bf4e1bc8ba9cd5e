import assert from "node:assert/strict";
import { delay } from "../lib/std/async.ts";
import { ModelCallError, ModelClient } from "../lib/model/model_client.ts";
import { relayHeaders } from "../lib/http/proxy.ts";
import { waitFor } from "./helpers/http.ts";
import { makeCert } from "./helpers/tls.ts";
import {
  answerEach,
  jsonAnswer,
  type Script,
  ScriptedServer,
} from "./helpers/scripted_server.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const BODY = enc.encode('{"prompt":"hi"}');

/** A client and a scripted server for `fn`, both closed after it. */
async function withServer(
  script: Script,
  fn: (s: ScriptedServer, client: ModelClient) => Promise<void>,
  idleSeconds = 30,
): Promise<void> {
  const client = new ModelClient({ idleSeconds });
  await using server = new ScriptedServer(script);
  try {
    await fn(server, client);
  } finally {
    client.close();
  }
}

function post(
  client: ModelClient,
  url: string,
  signal = new AbortController().signal,
) {
  return client.post(url, BODY, "text/event-stream", signal);
}

/** Every chunk of `stream`, decoded, in order. */
async function chunksOf(stream: ReadableStream<Uint8Array>): Promise<string[]> {
  const out: string[] = [];
  for await (const c of stream) out.push(dec.decode(c));
  return out;
}

Deno.test("a request goes out once, as one POST with its headers, and answers share one kept-alive connection", async () => {
  await withServer(answerEach(jsonAnswer('{"ok":1}')), async (s, client) => {
    for (let i = 0; i < 3; i++) {
      const a = await post(client, `${s.url}/v1/completions?x=1`);
      assert.equal(a.status, 200);
      assert.equal(a.headers.get("content-type"), "application/json");
      assert.equal(dec.decode(await a.bytes()), '{"ok":1}');
    }
    assert.equal(s.connections, 1);
    assert.equal(s.requests.length, 3);
    const [line, ...headers] = s.requests[0].head.split("\r\n");
    assert.equal(line, "POST /v1/completions?x=1 HTTP/1.1");
    assert.ok(headers.includes(`host: ${new URL(s.url).host}`));
    assert.ok(headers.includes("content-type: application/json"));
    assert.ok(headers.includes(`content-length: ${BODY.byteLength}`));
    assert.ok(headers.includes("accept: text/event-stream"));
    assert.ok(headers.includes("accept-encoding: identity"));
    assert.equal(s.requests[0].body, '{"prompt":"hi"}');
  });
});

Deno.test("chunked: each chunk comes out as sent, never merged, without waiting for its late CRLF", async () => {
  let sent = 0;
  await withServer(async (c) => {
    await c.readRequest();
    await c.write(
      "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
    );
    await c.write('f\r\ndata: {"i":0}\n\n');
    sent = performance.now();
    await delay(300);
    await c.write("\r\n");
    // Two chunks in one write stay two chunks; an extension is ignored.
    await c.write(
      "5;ext=1\r\nhello\r\n5\r\nworld\r\n0\r\nx-trailer: t\r\n\r\n",
    );
    await c.readRequest(); // still open: the connection went back to the pool
  }, async (s, client) => {
    const a = await post(client, `${s.url}/stream`);
    const reader = a.stream().getReader();
    const first = await reader.read();
    assert.equal(dec.decode(first.value), 'data: {"i":0}\n\n');
    assert.ok(performance.now() - sent < 200, "the first chunk waited");
    const rest: string[] = [];
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      rest.push(dec.decode(r.value));
    }
    assert.deepEqual(rest, ["hello", "world"]);
    await waitFor(() => client.idleConnections === 1, 1000, "pooled");
  });
});

Deno.test("a body to the close, an HTTP/1.0 answer or connection: close are read whole and their connection is not reused", async () => {
  const answers = [
    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end",
    "HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\none",
    "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 3\r\n\r\ntwo",
  ];
  await withServer(async (c, i) => {
    await c.readRequest();
    await c.write(answers[i]);
    if (i === 0) c.close();
    else await c.closedByClient();
  }, async (s, client) => {
    const got = [];
    for (let i = 0; i < answers.length; i++) {
      got.push(dec.decode(await (await post(client, s.url)).bytes()));
    }
    assert.deepEqual(got, ["until the end", "one", "two"]);
    assert.equal(s.connections, 3);
    assert.equal(client.idleConnections, 0);
  });
});

Deno.test("header bytes above 0x7F come through as the same bytes (a model's odd header does not fail the answer)", async () => {
  // Raw bytes, not UTF-8: each character of the string is one byte.
  const raw = Uint8Array.from(
    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-odd: a\x80\xe9\r\n\r\nok",
    (ch) => ch.charCodeAt(0),
  );
  await withServer(async (c) => {
    await c.readRequest();
    await c.write(raw);
  }, async (s, client) => {
    const a = await post(client, s.url);
    assert.equal(a.headers.get("x-odd"), "a\x80\xe9");
    assert.equal(dec.decode(await a.bytes()), "ok");
    // As the worker relays it to the client (Headers take ByteStrings).
    assert.equal(relayHeaders(a.headers).get("x-odd"), "a\x80\xe9");
  });
});

Deno.test("100 Continue is skipped; a 204 has no body and keeps its connection", async () => {
  await withServer(async (c) => {
    await c.readRequest();
    await c.write("HTTP/1.1 100 Continue\r\n\r\n");
    await c.write(jsonAnswer("{}"));
    await c.readRequest();
    await c.write("HTTP/1.1 204 No Content\r\n\r\n");
    await c.readRequest();
    await c.write(jsonAnswer('"again"'));
    await c.closedByClient();
  }, async (s, client) => {
    const first = await post(client, s.url);
    assert.equal(first.status, 200);
    // The 100's body-less head was not taken for the answer's.
    assert.equal(dec.decode(await first.bytes()), "{}");
    const ok = await post(client, s.url);
    assert.equal(ok.status, 204);
    assert.equal(ok.hasBody, false);
    assert.equal(
      dec.decode(await (await post(client, s.url)).bytes()),
      '"again"',
    );
    assert.equal(s.connections, 1);
  });
});

Deno.test("a pooled connection the server closes, or writes to unasked (408), leaves the pool at once; the next request opens another", async () => {
  await withServer(async (c, i) => {
    await c.readRequest();
    await c.write(jsonAnswer(`${i}`));
    await delay(50);
    if (i === 1) {
      await c.write(
        "HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n",
      );
    }
    c.close();
  }, async (s, client) => {
    for (let i = 0; i < 3; i++) {
      const a = await post(client, s.url);
      assert.equal(dec.decode(await a.bytes()), `${i}`);
      assert.equal(client.idleConnections, 1);
      await waitFor(() => client.idleConnections === 0, 1000, "dropped");
    }
    assert.equal(s.connections, 3);
    assert.equal(s.requests.length, 3);
  });
});

Deno.test("a request the server reads and drops unanswered is an error, never sent again", async () => {
  await withServer(async (c, i) => {
    await c.readRequest();
    if (i === 0) await c.write(jsonAnswer("{}"));
    await c.readRequest(); // the second request: read, then the server dies
  }, async (s, client) => {
    await (await post(client, s.url)).bytes();
    await assert.rejects(
      post(client, s.url),
      (e) =>
        e instanceof ModelCallError &&
        /closed before an answer/.test(e.message),
    );
    assert.equal(s.requests.length, 2);
    assert.equal(s.connections, 1);
  });
});

Deno.test("a chunked body cut inside a chunk, in its trailers or right after a chunk's data is an error naming where", async () => {
  const answers = [
    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-t: 1\r\n",
    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello",
  ];
  await withServer(async (c, i) => {
    await c.readRequest();
    await c.write(answers[i]);
    c.close();
  }, async (s, client) => {
    const cuts = [
      /closed mid-chunk/,
      /closed in trailers/,
      /closed mid-answer/,
    ];
    for (const cut of cuts) {
      const a = await post(client, s.url);
      await assert.rejects(chunksOf(a.stream()), cut);
    }
  });
});

Deno.test("a body cut short, a bad chunk size, an answer that is not HTTP or a head too large are errors naming it", async () => {
  const answers = [
    "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    "SSH-2.0-OpenSSH_9.2\r\n\r\n",
    `HTTP/1.1 200 OK\r\nx-big: ${"a".repeat(70_000)}\r\n\r\n`,
    "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
  ];
  await withServer(async (c, i) => {
    await c.readRequest();
    await c.write(answers[i]);
    c.close();
  }, async (s, client) => {
    const a = await post(client, s.url);
    await assert.rejects(a.bytes(), /closed mid-answer/);
    const b = await post(client, s.url);
    await assert.rejects(chunksOf(b.stream()), /bad chunk size line "zz"/);
    await assert.rejects(post(client, s.url), /not HTTP\/1: "SSH-2.0/);
    await assert.rejects(post(client, s.url), /answer head over 65536 bytes/);
    await assert.rejects(post(client, s.url), /invalid content-length "3, 4"/);
  });
});

Deno.test("the signal closes the connection at once, waiting for the answer or mid-stream; the call rejects with its reason", async () => {
  const closedAt: number[] = [];
  await withServer(async (c, i) => {
    await c.readRequest();
    if (i === 1) {
      await c.write(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\none\r\n",
      );
    }
    await c.closedByClient();
    closedAt.push(performance.now());
  }, async (s, client) => {
    const waiting = new AbortController();
    const call = post(client, s.url, waiting.signal);
    await waitFor(() => s.requests.length === 1, 1000, "sent");
    const t0 = performance.now();
    waiting.abort(new Error("client gone"));
    await assert.rejects(call, /client gone/);
    await waitFor(() => closedAt.length === 1, 1000, "closed");
    assert.ok(closedAt[0] - t0 < 50, `closed after ${closedAt[0] - t0} ms`);

    const streaming = new AbortController();
    const a = await post(client, s.url, streaming.signal);
    const reader = a.stream().getReader();
    assert.equal(dec.decode((await reader.read()).value), "one");
    const t1 = performance.now();
    streaming.abort(new Error("timeout"));
    await assert.rejects(reader.read());
    await waitFor(() => closedAt.length === 2, 1000, "closed");
    assert.ok(closedAt[1] - t1 < 50, `closed after ${closedAt[1] - t1} ms`);
    assert.equal(client.idleConnections, 0);
  });
});

Deno.test("an idle connection is closed after idleSeconds, before the server's own idle close", async () => {
  let closed = 0;
  await withServer(async (c) => {
    await c.readRequest();
    await c.write(jsonAnswer("{}"));
    await c.closedByClient();
    closed = performance.now();
  }, async (s, client) => {
    await (await post(client, s.url)).bytes();
    const idleFrom = performance.now();
    await waitFor(() => closed > 0, 2000, "closed by the client");
    assert.ok(closed - idleFrom >= 180, `closed after ${closed - idleFrom} ms`);
    assert.equal(client.idleConnections, 0);
  }, 0.2);
});

Deno.test("a gzip answer is decoded; an encoding the client cannot decode is an error naming it", async () => {
  const zipped = new Uint8Array(
    await new Response(
      new Blob(['{"zipped":true}']).stream().pipeThrough(
        new CompressionStream("gzip"),
      ),
    ).arrayBuffer(),
  );
  await withServer(async (c) => {
    // Both requests come on this one kept-alive connection.
    await c.readRequest();
    await c.write(
      `HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: ${zipped.byteLength}\r\n\r\n`,
    );
    await c.write(zipped);
    await c.readRequest();
    await c.write(
      "HTTP/1.1 200 OK\r\ncontent-encoding: br\r\ncontent-length: 1\r\n\r\nx",
    );
    await c.closedByClient();
  }, async (s, client) => {
    const a = await post(client, s.url);
    assert.equal(dec.decode(await a.bytes()), '{"zipped":true}');
    await assert.rejects(post(client, s.url), /br encoding/);
  });
});

Deno.test("a model server that is not listening is an error saying so", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const client = new ModelClient();
  try {
    await assert.rejects(
      post(client, `http://127.0.0.1:${port}/x`),
      (e) => e instanceof ModelCallError && /refused/i.test(e.message),
    );
  } finally {
    client.close();
  }
});

Deno.test("an https model server is reached over TLS (a self-signed one with caCerts)", async () => {
  const dir = await Deno.makeTempDir();
  const { cert, key, pem } = await makeCert(dir);
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(cert),
    key: await Deno.readTextFile(key),
    onListen: () => {},
  }, async (req) => new Response(`tls:${await req.text()}`));
  const client = new ModelClient({ caCerts: [pem] });
  try {
    const url = `https://127.0.0.1:${server.addr.port}/x`;
    for (let i = 0; i < 2; i++) {
      const a = await post(client, url);
      assert.equal(dec.decode(await a.bytes()), 'tls:{"prompt":"hi"}');
    }
    assert.equal(client.idleConnections, 1);
  } finally {
    client.close();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a large body (over one write) arrives whole, byte for byte", async () => {
  const big = enc.encode(JSON.stringify({ image: "é".repeat(150_000) }));
  await withServer(async (c) => {
    const r = await c.readRequest();
    await c.write(jsonAnswer(String(r?.body.length)));
    await c.closedByClient();
  }, async (s, client) => {
    const a = await client.post(s.url, big, null, new AbortController().signal);
    assert.equal(Number(dec.decode(await a.bytes())), dec.decode(big).length);
    assert.equal(s.requests[0].body, dec.decode(big));
    assert.ok(
      s.requests[0].head.includes(`content-length: ${big.byteLength}`),
    );
  });
});

Deno.test("localhost reaches a model server bound to either loopback", async () => {
  for (const hostname of ["127.0.0.1", "::1"]) {
    const server = Deno.serve(
      { hostname, port: 0, onListen: () => {} },
      () => new Response(hostname),
    );
    const client = new ModelClient();
    try {
      const a = await post(client, `http://localhost:${server.addr.port}/`);
      assert.equal(dec.decode(await a.bytes()), hostname);
    } finally {
      client.close();
      await server.shutdown();
    }
  }
});

Deno.test("an answer declared over 16 MiB is read as it arrives: whole when it all comes, an error naming the cut when not", async () => {
  const big = new Uint8Array(17 * 1024 * 1024).fill(0x61);
  await withServer(async (c, i) => {
    await c.readRequest();
    await c.write(
      `HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: ${big.byteLength}\r\n\r\n`,
    );
    // The second answer claims 17 MiB and stops after 5 bytes.
    await c.write(i === 0 ? big : "aaaaa");
    c.close();
  }, async (s, client) => {
    const whole = await (await post(client, s.url)).bytes();
    assert.equal(whole.byteLength, big.byteLength);
    assert.ok(whole.every((b) => b === 0x61));
    const cut = await post(client, s.url);
    await assert.rejects(cut.bytes(), /closed mid-answer/);
  });
});
