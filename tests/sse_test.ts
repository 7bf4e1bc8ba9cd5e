import assert from "node:assert/strict";
import {
  EventStreamParser,
  eventStreamTransform,
  parseEventStream,
} from "../lib/client/sse.ts";

const encoder = new TextEncoder();

function bodyOf(chunks: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(
    chunks.map((c) => (typeof c === "string" ? encoder.encode(c) : c)),
  );
}

async function collect(body: ReadableStream<Uint8Array>): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const event of parseEventStream(body)) out.push(event);
  return out;
}

Deno.test("SSE: data events, [DONE], comments and other fields", async () => {
  const text =
    ': keep-alive\n\nevent: message\nid: 1\nretry: 10\ndata: {"a":1}\n\n' +
    'data:{"b":2}\n\ndata: [DONE]\n\n';
  assert.deepEqual(await collect(bodyOf([text])), [{ a: 1 }, { b: 2 }]);
});

Deno.test("SSE: events split anywhere across chunks, with \\r\\n", async () => {
  const text =
    'data: {"a":1}\r\n\r\n: ping\r\ndata: {"b":[1,2]}\r\n\r\ndata: {"c":"é"}\r\n\r\n';
  const bytes = encoder.encode(text);
  for (let size = 1; size <= 7; size++) {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i += size) {
      chunks.push(bytes.slice(i, i + size));
    }
    assert.deepEqual(await collect(bodyOf(chunks)), [{ a: 1 }, { b: [1, 2] }, {
      c: "é",
    }], `size ${size}`);
  }
});

Deno.test("SSE: \\r\\n split between chunks is one line break, without delay", () => {
  const parser = new EventStreamParser();
  assert.deepEqual(parser.push('data: {"a":1}\r'), [{ a: 1 }]);
  assert.deepEqual(parser.push('\n\r\ndata: {"b"'), []);
  assert.deepEqual(parser.push(":2}\r"), [{ b: 2 }]);
  assert.deepEqual(parser.push(""), []);
  assert.deepEqual(parser.push("\n"), []);
  assert.deepEqual(parser.push('\ndata: {"c":3}\n'), [{ c: 3 }]);
  assert.deepEqual(parser.end(), []);
});

Deno.test("SSE: multi-line data is joined; bare \\r line endings work", () => {
  const parser = new EventStreamParser();
  assert.deepEqual(parser.push('data: {"a":\ndata: 1}\n\n'), [{ a: 1 }]);
  assert.deepEqual(parser.push('data: {"b":2}\r\rdata: not json\n\n'), [{
    b: 2,
  }]);
  assert.deepEqual(parser.end(), []);
});

Deno.test("JSONL: one JSON value per line, last line without newline", async () => {
  assert.deepEqual(
    await collect(
      bodyOf(['{"a":1}\n\n{"b"', ':2}\r\n[1]\n[DONE]\nnot json\n{"c":3}']),
    ),
    [
      { a: 1 },
      { b: 2 },
      [1],
      { c: 3 },
    ],
  );
});

Deno.test("end() flushes data without a trailing blank line", () => {
  const parser = new EventStreamParser();
  assert.deepEqual(parser.push("data: [DONE]"), []);
  assert.deepEqual(parser.end(), []);
  assert.deepEqual(parser.push('data: {"x":1'), []);
  assert.deepEqual(parser.push("}"), []);
  assert.deepEqual(parser.end(), [{ x: 1 }]);
});

Deno.test("breaking out of parseEventStream cancels the body", async () => {
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>({
    pull(controller): void {
      controller.enqueue(encoder.encode('data: {"n":1}\n\n'));
    },
    cancel(): void {
      cancelled = true;
    },
  });
  for await (const event of parseEventStream(body)) {
    assert.deepEqual(event, { n: 1 });
    break;
  }
  assert.equal(cancelled, true);
});

Deno.test("eventStreamTransform yields events through pipeThrough", async () => {
  const events: unknown[] = [];
  const stream = bodyOf(['data: {"a"', ":1}\n\ndata: [DONE]\n\n", '{"b":2}'])
    .pipeThrough(eventStreamTransform());
  for await (const event of stream) events.push(event);
  assert.deepEqual(events, [{ a: 1 }, { b: 2 }]);
});

Deno.test("UTF-8 sequences split across chunks decode correctly", async () => {
  const bytes = encoder.encode('data: {"emoji":"😀"}\n\n');
  const cut = bytes.indexOf(0xf0) + 2;
  assert.deepEqual(
    await collect(bodyOf([bytes.slice(0, cut), bytes.slice(cut)])),
    [{ emoji: "😀" }],
  );
});
