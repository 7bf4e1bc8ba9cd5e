import assert from "node:assert/strict";
import fc from "fast-check";
import { SseIdInjector } from "../lib/traffic/sse_ids.ts";
import { cutAt } from "./helpers/cut.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Runs `chunks` through one injector; returns each output chunk as text. */
function inject(chunks: string[]): string[] {
  const ids = new SseIdInjector();
  let offset = 0;
  return chunks.map((c) => {
    const out = ids.inject(enc.encode(c), offset);
    offset += out.length;
    return dec.decode(out);
  });
}

Deno.test("each SSE event gets an id line before its blank line; the id is the line's byte offset", () => {
  const out = inject(['data: {"a":1}\n\n', 'data: {"b":2}\n\n']).join("");
  assert.equal(
    out,
    'data: {"a":1}\nid: 14\n\ndata: {"b":2}\nid: 36\n\n',
  );
  assert.equal(out.indexOf("id: 14"), 14);
  assert.equal(out.indexOf("id: 36"), 36);
});

Deno.test("CR LF and CR line ends are read as the spec says; comments are events too", () => {
  assert.equal(inject(["data: a\r\n\r\n"]).join(""), "data: a\r\nid: 9\n\r\n");
  assert.equal(inject(["data: a\r\r"]).join(""), "data: a\rid: 8\n\r");
  assert.equal(inject([": ping\n\n"]).join(""), ": ping\nid: 7\n\n");
  // A terminator split between chunks is one terminator, not a blank line.
  assert.deepEqual(inject(["data: a\r", "\ndata: b\n\n"]), [
    "data: a\r",
    "\ndata: b\nid: 17\n\n",
  ]);
  // Blank lines with no event in between get no id.
  assert.equal(
    inject(["\n\n\ndata: x\n\n\n"]).join(""),
    "\n\n\ndata: x\nid: 11\n\n\n",
  );
});

Deno.test("injection does not depend on how the stream is cut into chunks, and never merges or holds back a chunk", () => {
  const line = fc.constantFrom(
    'data: {"i":1}',
    "data: [DONE]",
    "event: delta",
    ": keepalive",
    "id: 7",
    "",
  );
  const eol = fc.constantFrom("\n", "\r\n", "\r");
  const stream = fc.array(fc.tuple(line, eol), { maxLength: 40 }).map((ls) =>
    ls.map(([l, e]) => l + e).join("")
  );
  fc.assert(
    fc.property(stream, fc.array(fc.nat(), { maxLength: 12 }), (text, cuts) => {
      const whole = inject([text]).join("");
      const chunks = cutAt(text, cuts);
      const out = inject(chunks);
      assert.equal(out.join(""), whole);
      assert.equal(out.length, chunks.length);
      out.forEach((o, i) => {
        // Each output chunk is its input chunk with id lines added.
        assert.equal(
          o.replace(/id: \d+\n/g, ""),
          chunks[i].replace(/id: \d+\n/g, ""),
        );
      });
    }),
    { numRuns: 300 },
  );
});

Deno.test("closing() ends an event under way so an error event can follow", () => {
  const ids = new SseIdInjector();
  assert.equal(ids.closing(), "");
  ids.inject(enc.encode("data: par"), 0);
  assert.equal(ids.closing(), "\n\n");
  ids.inject(enc.encode("tial\n"), 9);
  assert.equal(ids.closing(), "\n");
  ids.inject(enc.encode("\n"), 14);
  assert.equal(ids.closing(), "");
});
