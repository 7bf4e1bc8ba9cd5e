/**
 * `parseEnvelope`: `auth_data` field limits and numbers as Python reads them
 * (any integer exact, negative and non-integral accepted, non-numbers 422).
 */
import assert from "node:assert/strict";
import { AUTH_DATA_LIMITS, parseEnvelope } from "../lib/http/envelope.ts";

/** A body text with `auth_data` fields spelled as given (raw JSON text). */
function bodyText(fields: Record<string, string> = {}): string {
  const all: Record<string, string> = {
    cost: "100",
    endpoint: '"ep"',
    reqnum: "1",
    request_idx: "1",
    signature: '"QUJD"',
    url: '"https://203.0.113.5:41234"',
    ...fields,
  };
  const auth = Object.entries(all).map(([k, v]) => `"${k}": ${v}`).join(", ");
  return `{"auth_data": {${auth}}, "payload": {}}`;
}

function parse(fields: Record<string, string> = {}) {
  const text = bodyText(fields);
  return parseEnvelope(JSON.parse(text), text);
}

Deno.test("integers beyond 2^53 keep every digit, as Python ints do", () => {
  const r = parse({
    reqnum: "1152921504606846977",
    request_idx: "9223372036854775808",
  });
  assert.ok(r.ok);
  assert.equal(r.numbers.reqnum, 2n ** 60n + 1n);
  assert.equal(r.numbers.request_idx, 2n ** 63n);
  const negative = parse({ reqnum: "-9223372036854775809" });
  assert.ok(negative.ok);
  assert.equal(negative.numbers.reqnum, -(2n ** 63n) - 1n);
});

Deno.test("safe integers, negatives and floats are numbers, as Python accepts them", () => {
  const cases: [string, number][] = [
    ["35", 35],
    ["-7", -7],
    ["-0", 0],
    ["9007199254740991", 2 ** 53 - 1],
    ["1.5", 1.5],
    ["1e3", 1000],
    ["35.0", 35],
  ];
  for (const [source, want] of cases) {
    const r = parse({ request_idx: source });
    assert.ok(r.ok, source);
    assert.equal(r.numbers.request_idx, want, source);
  }
});

Deno.test("without the body text numbers are what JSON.parse read", () => {
  const r = parseEnvelope(JSON.parse(bodyText({ reqnum: "5" })));
  assert.ok(r.ok);
  assert.equal(r.numbers.reqnum, 5);
});

Deno.test("a non-number reqnum or request_idx gets 422 naming the field", () => {
  for (const bad of ['"5"', "true", "null", "[1]", "1e400"]) {
    for (const field of ["reqnum", "request_idx"]) {
      const r = parse({ [field]: bad });
      assert.ok(!r.ok, `${field}: ${bad}`);
      const errors = r.errors.auth_data as Record<string, string>;
      assert.deepEqual(Object.keys(errors), [field], `${field}: ${bad}`);
      assert.match(errors[field], /expected number/);
    }
  }
});

Deno.test("auth_data fields over their limits get 422 naming the field; at the limit they pass", () => {
  const L = AUTH_DATA_LIMITS;
  const str = (n: number) => JSON.stringify("a".repeat(n));
  const over: [string, string, string][] = [
    ["url", str(L.url + 1), `longer than ${L.url} characters`],
    ["endpoint", str(L.endpoint + 1), `longer than ${L.endpoint} characters`],
    [
      "signature",
      str(L.signature + 1),
      `longer than ${L.signature} characters`,
    ],
    ["cost", str(L.cost + 1), `longer than ${L.cost} characters`],
    [
      "reqnum",
      "1".repeat(L.number + 1),
      `number longer than ${L.number} characters`,
    ],
    [
      "request_idx",
      "-" + "1".repeat(L.number),
      `number longer than ${L.number} characters`,
    ],
    [
      "cost",
      "1." + "0".repeat(L.number),
      `number longer than ${L.number} characters`,
    ],
  ];
  for (const [field, value, message] of over) {
    const r = parse({ [field]: value });
    assert.ok(!r.ok, field);
    assert.deepEqual(r.errors, { auth_data: { [field]: message } }, field);
  }
  const atLimit = parse({
    url: str(L.url),
    endpoint: str(L.endpoint),
    signature: str(L.signature),
    cost: str(L.cost),
    reqnum: "9".repeat(L.number),
  });
  assert.ok(atLimit.ok);
  assert.equal(atLimit.numbers.reqnum, 10n ** BigInt(L.number) - 1n);
});

Deno.test("a url of 4096 DEL characters is within the limit, one more is not", () => {
  // One DEL is 6 characters once escaped Python-style: the limit is on the input.
  const ok = parse({ url: JSON.stringify("\x7f".repeat(4096)) });
  assert.ok(ok.ok);
  const over = parse({ url: JSON.stringify("\x7f".repeat(4097)) });
  assert.ok(!over.ok);
});
