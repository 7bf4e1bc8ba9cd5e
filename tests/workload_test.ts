import assert from "node:assert/strict";
import {
  compileWorkload,
  estimateTokens,
  MAX_WORKLOAD,
  workloadOf,
} from "../lib/traffic/workload.ts";

Deno.test("a calculator that fails falls back to 100", () => {
  const bad = [
    () => {
      throw new Error("no field");
    },
    () => NaN,
    () => -5,
    () => "12" as unknown as number,
  ];
  for (const calc of bad) assert.equal(workloadOf(calc, "/r")({}), 100);
  assert.equal(workloadOf(() => 0, "/r")({}), 0);
  assert.equal(workloadOf((p) => Number(p.n), "/r")({ n: 42 }), 42);
});

Deno.test("a client's huge number is capped, so sums stay finite", () => {
  const fromField = workloadOf(
    { kind: "field", path: "max_tokens", default: 16 },
    "/r",
  );
  assert.equal(fromField({ max_tokens: 1.7e308 }), MAX_WORKLOAD);
  // JSON.parse("1e400") is Infinity
  assert.equal(fromField({ max_tokens: Infinity }), MAX_WORKLOAD);
  assert.equal(fromField({ max_tokens: MAX_WORKLOAD - 1 }), MAX_WORKLOAD - 1);
  const sum = fromField({ max_tokens: 1.7e308 }) * 2 -
    fromField({ max_tokens: 1.7e308 }) * 2;
  assert.equal(sum, 0);
});

Deno.test("declarative workloads: constant, field, tokens", () => {
  assert.equal(compileWorkload({ kind: "constant", value: 7 })({}), 7);
  const field = compileWorkload({
    kind: "field",
    path: "parameters.max_new_tokens",
    default: 3,
  });
  assert.equal(field({ parameters: { max_new_tokens: 128 } }), 128);
  assert.equal(field({}), 3);
  const tokens = compileWorkload({
    kind: "tokens",
    fields: ["prompt", "messages"],
    outputFields: ["max_completion_tokens", "max_tokens"],
    defaultOutput: 16,
    charsPerToken: 4,
  });
  assert.equal(tokens({ prompt: "abcdefgh", max_tokens: 10 }), 12);
  assert.equal(
    tokens({
      messages: [{ role: "user", content: [{ type: "text", text: "abcd" }] }],
    }),
    17,
  );
  assert.equal(
    tokens({ prompt: "abcd", max_completion_tokens: 1, max_tokens: 99 }),
    2,
  );
});

Deno.test("a field that is not a number gives the fallback through workloadOf", () => {
  const calc = workloadOf(
    { kind: "field", path: "max_tokens", default: 0 },
    "/r",
  );
  assert.equal(calc({ max_tokens: "lots" }), 100);
});

Deno.test("estimateTokens counts text in strings, arrays and chat parts", () => {
  assert.equal(estimateTokens("a".repeat(400)), 100);
  assert.equal(estimateTokens(["ab", "cd"]), 1);
  assert.equal(estimateTokens(undefined), 0);
  assert.equal(estimateTokens({ content: "x".repeat(8) }), 2);
});
