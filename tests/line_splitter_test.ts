import assert from "node:assert/strict";
import { LineSplitter } from "../lib/model/line_splitter.ts";

Deno.test("LineSplitter.push() returns complete lines for \\n and \\r\\n", () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push("a\nb\r\nc"), ["a", "b"]);
  assert.deepEqual(s.push("\n"), ["c"]);
  assert.deepEqual(s.push("\n\r\n"), ["", ""]);
});

Deno.test("LineSplitter.push() keeps a partial line until its newline", () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push("model lo"), []);
  assert.equal(s.pendingLength, 8);
  assert.deepEqual(s.push("aded"), []);
  assert.deepEqual(s.push("\nnext"), ["model loaded"]);
  assert.deepEqual(s.push(""), []);
});

Deno.test("LineSplitter.push() joins \\r\\n split across pushes", () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push("ready\r"), []);
  assert.deepEqual(s.push("\nx\r"), ["ready"]);
  // A lone \r inside a line is content, not a terminator.
  assert.deepEqual(s.push("y\n"), ["x\ry"]);
});

Deno.test("LineSplitter.push() cuts an over-long line and discards its rest", () => {
  const s = new LineSplitter({ maxLineLength: 5 });
  assert.deepEqual(s.push("abc"), []);
  // Emitted as soon as it is too long, not when its newline arrives.
  assert.deepEqual(s.push("defgh"), ["abcde"]);
  assert.equal(s.pendingLength, 0);
  assert.deepEqual(s.push("x".repeat(100_000)), []);
  assert.equal(s.pendingLength, 0);
  assert.deepEqual(s.push("zz\nok\n"), ["ok"]);
  assert.deepEqual(s.push("0123456789\n12345\n"), ["01234", "12345"]);
  // Exactly the limit, with \r\n arriving later, is not cut.
  assert.deepEqual(s.push("abcde"), []);
  assert.deepEqual(s.push("\r\n"), ["abcde"]);
});

Deno.test("LineSplitter keeps memory bounded over many pieces of one line", () => {
  const s = new LineSplitter({ maxLineLength: 1024 });
  const out: string[] = [];
  for (let i = 0; i < 10_000; i++) out.push(...s.push("0123456789"));
  assert.ok(s.pendingLength <= 1024);
  assert.deepEqual(out, ["0123456789".repeat(103).slice(0, 1024)]);
  assert.deepEqual(s.push("\nnext\n"), ["next"]);
});

Deno.test("LineSplitter does not cut a surrogate pair in half", () => {
  const s = new LineSplitter({ maxLineLength: 4 });
  const [line] = s.push("abc\u{1F600}def\n");
  assert.equal(line, "abc");
});

Deno.test("LineSplitter.reset() drops the partial line; flush() returns it", () => {
  const s = new LineSplitter();
  s.push("stale");
  s.reset();
  assert.deepEqual(s.push("fresh\n"), ["fresh"]);
  s.push("tail\r");
  assert.equal(s.flush(), "tail");
  assert.equal(s.flush(), undefined);
});

Deno.test("LineSplitter rejects a non-positive maxLineLength", () => {
  assert.throws(() => new LineSplitter({ maxLineLength: 0 }), RangeError);
});
