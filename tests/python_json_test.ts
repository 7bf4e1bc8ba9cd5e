import assert from "node:assert/strict";
import {
  JsonNumber,
  parseJsonKeepingNumbers,
  pythonFloatRepr,
  pythonJsonDumps,
  pythonNumberText,
  pythonNumberValue,
  restoreNumberSources,
} from "../lib/auth/python_json.ts";

// Expected values are what CPython 3.11 prints for
// json.dumps(json.loads(source)); they were checked with python3 by hand.
const NUMBER_CASES: [source: string, python: string][] = [
  ["100", "100"],
  ["0", "0"],
  ["-0", "0"],
  ["-0.0", "-0.0"],
  ["0.0", "0.0"],
  ["256.0", "256.0"],
  ["1e3", "1000.0"],
  ["1E3", "1000.0"],
  ["1.50", "1.5"],
  ["-12.0", "-12.0"],
  ["0.1", "0.1"],
  ["0.30000000000000004", "0.30000000000000004"],
  ["0.0001", "0.0001"],
  ["1e-5", "1e-05"],
  ["0.00001234", "1.234e-05"],
  ["1e-7", "1e-07"],
  ["5e-324", "5e-324"],
  ["123.456e2", "12345.6"],
  ["2.5E+10", "25000000000.0"],
  ["1e15", "1000000000000000.0"],
  ["1e16", "1e+16"],
  ["100000000000000000000.0", "1e+20"],
  ["1e22", "1e+22"],
  ["1.5e300", "1.5e+300"],
  ["1.7976931348623157e308", "1.7976931348623157e+308"],
  ["1e400", "Infinity"],
  ["-1e400", "-Infinity"],
  ["123456789012345678", "123456789012345678"],
  ["12345678901234567890", "12345678901234567890"],
  ["9007199254740993", "9007199254740993"],
  ["9007199254740993.0", "9007199254740992.0"],
];

Deno.test("pythonNumberText() prints each literal the way Python re-serializes it", () => {
  for (const [source, python] of NUMBER_CASES) {
    assert.equal(pythonNumberText(source), python, `source ${source}`);
  }
});

Deno.test("pythonFloatRepr() writes what Python's repr(float) writes", () => {
  // Printed by CPython 3.11: repr(x) for each x.
  const cases: [number, string][] = [
    [1e16, "1e+16"],
    [1e-7, "1e-07"],
    [0.1, "0.1"],
    [100, "100.0"],
    [2 ** 53, "9007199254740992.0"],
    [1e22, "1e+22"],
    [123456789012345680, "1.2345678901234568e+17"],
    [-0, "-0.0"],
    [5e-324, "5e-324"],
    [1e-4, "0.0001"],
    [9999999999999998, "9999999999999998.0"],
  ];
  for (const [x, python] of cases) assert.equal(pythonFloatRepr(x), python);
});

Deno.test("pythonFloatRepr() matches Python on 330 doubles (fixture)", async () => {
  // tests/fixtures/python_float_repr.py wrote repr() of edge cases and of
  // random doubles; Number() of Python's text is the very same double.
  const reprs: string[] = JSON.parse(
    await Deno.readTextFile(
      new URL("./fixtures/python_float_repr.json", import.meta.url),
    ),
  );
  assert.equal(reprs.length, 330);
  const wrong = reprs.filter((s) => pythonFloatRepr(Number(s)) !== s);
  assert.deepEqual(wrong, []);
});

Deno.test("pythonFloatRepr() handles zero, NaN and infinities", () => {
  assert.equal(pythonFloatRepr(0), "0.0");
  assert.equal(pythonFloatRepr(-0), "-0.0");
  assert.equal(pythonFloatRepr(NaN), "NaN");
  assert.equal(pythonFloatRepr(-Infinity), "-Infinity");
  assert.equal(pythonFloatRepr(1000), "1000.0");
  assert.equal(pythonFloatRepr(-1.5e-7), "-1.5e-07");
});

Deno.test("parseJsonKeepingNumbers() keeps each number's source text", () => {
  const parsed = parseJsonKeepingNumbers(
    '{"cost": 1000.0, "list": [1e3, 7, -0.50], "s": "1.0", "n": null}',
  );
  assert.deepEqual(parsed, {
    cost: new JsonNumber(1000, "1000.0"),
    list: [
      new JsonNumber(1000, "1e3"),
      new JsonNumber(7, "7"),
      new JsonNumber(-0.5, "-0.50"),
    ],
    s: "1.0",
    n: null,
  });
  assert.throws(() => parseJsonKeepingNumbers("{cost: 1}"), SyntaxError);
});

Deno.test("pythonJsonDumps() of a parsed body keeps Python's int/float split", () => {
  const text = '{"b": 1.0, "a": [256, 1e3, 0.00001], "c": {"x": 12.50}}';
  assert.equal(
    pythonJsonDumps(parseJsonKeepingNumbers(text)),
    '{\n    "a": [\n        256,\n        1000.0,\n        1e-05\n    ],\n' +
      '    "b": 1.0,\n    "c": {\n        "x": 12.5\n    }\n}',
  );
});

Deno.test("pythonJsonDumps() prints plain JS numbers as int when integral", () => {
  assert.equal(
    pythonJsonDumps([1000, 1.5, -0, 10n]),
    "[\n    1000,\n    1.5,\n    0,\n    10\n]",
  );
});

Deno.test("pythonJsonDumps() matches Python for nesting, empties, sorting and escapes", () => {
  const value = {
    b: [],
    a: {},
    c: [1, { y: true, x: null }],
    "\uff61": 1,
    "\u{1F600}": 2,
    "e\u0301": '\x7f\x00\x1f"\\/\n\t\u2028\u00e9\u{1F600}\ud800',
  };
  // python3 -c 'import json; print(json.dumps(value, indent=4, sort_keys=True))'
  const expected = [
    "{",
    '    "a": {},',
    '    "b": [],',
    '    "c": [',
    "        1,",
    "        {",
    '            "x": null,',
    '            "y": true',
    "        }",
    "    ],",
    '    "e\\u0301": "\\u007f\\u0000\\u001f\\"\\\\/\\n\\t\\u2028\\u00e9\\ud83d\\ude00\\ud800",',
    '    "\\uff61": 1,',
    '    "\\ud83d\\ude00": 2',
    "}",
  ].join("\n");
  assert.equal(pythonJsonDumps(value), expected);
});

Deno.test("pythonJsonDumps() prints scalars alone and the short escapes", () => {
  assert.equal(pythonJsonDumps("\b\f\r"), '"\\b\\f\\r"');
  assert.equal(pythonJsonDumps(false), "false");
  assert.equal(pythonJsonDumps(null), "null");
  assert.equal(pythonJsonDumps([]), "[]");
});

Deno.test("pythonJsonDumps() leaves out undefined properties and rejects other non-JSON values", () => {
  assert.equal(pythonJsonDumps({ a: undefined, b: 1 }), '{\n    "b": 1\n}');
  assert.throws(() => pythonJsonDumps([undefined]), {
    name: "TypeError",
    message: "Object of type undefined is not JSON serializable",
  });
  assert.throws(() => pythonJsonDumps({ f: () => 1 }), {
    name: "TypeError",
    message: "Object of type function is not JSON serializable",
  });
});

Deno.test("restoreNumberSources() borrows spelling only where values agree", () => {
  const raw = parseJsonKeepingNumbers(
    '{"cost": 1000.0, "reqnum": 5, "nested": {"v": [2.0, 3]}}',
  );
  // reqnum was changed by the caller, so its raw spelling must not be used;
  // "extra" has no raw counterpart.
  const merged = restoreNumberSources(
    { cost: 1000, reqnum: 6, nested: { v: [2, 3] }, extra: 4.0 },
    raw,
  );
  assert.equal(
    pythonJsonDumps(merged),
    '{\n    "cost": 1000.0,\n    "extra": 4,\n    "nested": {\n        "v": [\n' +
      '            2.0,\n            3\n        ]\n    },\n    "reqnum": 6\n}',
  );
});

Deno.test("pythonNumberValue() reads literals as json.loads does: exact ints, floats otherwise", () => {
  assert.equal(pythonNumberValue("9223372036854775808"), 2n ** 63n);
  assert.equal(pythonNumberValue("-9007199254740992"), -(2n ** 53n));
  assert.equal(pythonNumberValue("9007199254740991"), 2 ** 53 - 1);
  assert.equal(pythonNumberValue("-0"), 0);
  assert.equal(pythonNumberValue("1e3"), 1000);
  assert.equal(pythonNumberValue("12.5"), 12.5);
  assert.equal(pythonNumberValue("1e20"), 1e20);
});
