/**
 * `parseEnvelope`: `auth_data` field limits and numbers as Python reads them
 * (any integer exact, negative and non-integral accepted, non-numbers 422).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  AUTH_DATA_LIMITS,
  EnvelopeSchema,
  parseEnvelope,
} from "../lib/http/envelope.ts";
import { fcParams } from "./chaos/fc_params.ts";

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

Deno.test("the request path's own envelope check accepts exactly what EnvelopeSchema accepts, with the same output", () => {
  // Each field: valid values, values at and past its limit, other JSON types.
  const any = fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ maxLength: 4 }),
    fc.array(fc.integer(), { maxLength: 2 }),
    fc.dictionary(fc.string({ maxLength: 3 }), fc.integer(), { maxKeys: 2 }),
  );
  const text = (field: string) =>
    fc.oneof(
      fc.string({ maxLength: 8 }),
      fc.constant("x".repeat(AUTH_DATA_LIMITS[field])),
      fc.constant("x".repeat(AUTH_DATA_LIMITS[field] + 1)),
      any,
    );
  const maybe = <T>(a: fc.Arbitrary<T>) =>
    fc.option(a, { nil: undefined, freq: 5 });
  const auth = fc.record({
    cost: maybe(fc.oneof(fc.integer(), text("cost"))),
    endpoint: maybe(text("endpoint")),
    reqnum: maybe(fc.oneof(fc.integer(), fc.double({ noNaN: true }), any)),
    request_idx: maybe(fc.oneof(fc.integer(), any)),
    signature: maybe(text("signature")),
    url: maybe(text("url")),
    extra: maybe(any),
  }, { requiredKeys: [] });
  const envelope = fc.record({
    auth_data: maybe(fc.oneof(auth, any)),
    payload: maybe(fc.oneof(
      fc.dictionary(fc.string({ maxLength: 3 }), any, { maxKeys: 3 }),
      any,
    )),
    session_id: maybe(fc.oneof(fc.string({ maxLength: 4 }), any)),
    other: maybe(any),
  }, { requiredKeys: [] });
  fc.assert(
    fc.property(envelope, (body) => {
      // As JSON.parse would give it: undefined members absent.
      const parsed = JSON.parse(JSON.stringify(body));
      const ours = parseEnvelope(parsed);
      const zod = EnvelopeSchema.safeParse(parsed);
      assert.equal(ours.ok, zod.success);
      if (ours.ok && zod.success) assert.deepEqual(ours.envelope, zod.data);
    }),
    fcParams(2000),
  );
});
