import assert from "node:assert/strict";
import fc from "fast-check";
import { concat, isomorphicDecode } from "../lib/std/bytes.ts";

Deno.test("isomorphicDecode: every byte becomes the code point of its value, 0x80-0x9F included, at any length", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 20_000 }), (bytes) => {
      const text = isomorphicDecode(bytes);
      assert.equal(text.length, bytes.length);
      for (let i = 0; i < bytes.length; i++) {
        assert.equal(text.charCodeAt(i), bytes[i]);
      }
    }),
    { numRuns: 60 },
  );
  // Where windows-1252 (TextDecoder's "latin1") differs.
  assert.equal(isomorphicDecode(new Uint8Array([0x80, 0x9f])), "\x80\x9f");
});

Deno.test("concat joins arrays in order", () => {
  const joined = concat([
    new Uint8Array([1, 2]),
    new Uint8Array(0),
    new Uint8Array([3]),
  ]);
  assert.deepEqual([...joined], [1, 2, 3]);
});
