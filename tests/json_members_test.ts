/** `memberSpans`/`memberTexts`: member texts found without a second parse. */
import assert from "node:assert/strict";
import { memberSpans, memberTexts } from "../lib/auth/json_members.ts";

Deno.test("memberTexts() gives a nested member's exact text past strings that look like structure", () => {
  const text = `  {"payload": {"a": "}\\"]{[", "b": [1, {"c": "\\\\"}, []]},
    "auth_data" : { "x": "\\"reqnum\\": 1", "reqnum" : 1152921504606846977,
    "cost": 1000.0, "nested": {"reqnum": 3}, "request_idx": -0 } , "z": null}`;
  JSON.parse(text); // the scan expects valid JSON
  assert.deepEqual(
    [...memberTexts(text, ["auth_data"], ["reqnum", "cost", "request_idx"])],
    [["reqnum", "1152921504606846977"], ["cost", "1000.0"], [
      "request_idx",
      "-0",
    ]],
  );
});

Deno.test("memberTexts() follows JSON.parse: the last duplicate wins and escaped keys count", () => {
  const text =
    `{"auth_data": {"reqnum": 1}, "auth_data": {"reqnum": 2, "req\\u006eum": 3.50}}`;
  assert.equal(JSON.parse(text).auth_data.reqnum, 3.5);
  assert.deepEqual([...memberTexts(text, ["auth_data"], ["reqnum"])], [[
    "reqnum",
    "3.50",
  ]]);
});

Deno.test("memberTexts() is empty when the path is missing or not an object", () => {
  for (
    const text of [
      `{"payload": {}}`,
      `{"auth_data": [1, 2]}`,
      `{"auth_data": "x"}`,
      `[{"auth_data": {"reqnum": 1}}]`,
      `{}`,
    ]
  ) {
    assert.deepEqual([...memberTexts(text, ["auth_data"], ["reqnum"])], []);
  }
});

Deno.test("memberSpans() slices every kind of value", () => {
  const text =
    `{"s": "a\\\\", "n": -1.5e+3, "t": true, "f": false, "z": null, "o": {"k": [1]}, "a": [[], {}]}`;
  const keys = ["s", "n", "t", "f", "z", "o", "a"];
  const spans = memberSpans(text, keys);
  const values = JSON.parse(text);
  for (const key of keys) {
    const { start, end } = spans.get(key)!;
    assert.deepEqual(JSON.parse(text.slice(start, end)), values[key], key);
  }
});
