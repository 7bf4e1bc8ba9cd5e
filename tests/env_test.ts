import assert from "node:assert/strict";
import { assertEnvRefused } from "./helpers/env.ts";
import { readEnv, strtobool } from "../lib/config/env.ts";
import { booleanFrom } from "../workers/_preset.ts";

// Python 3.11's distutils.util.strtobool, printed with python3: these words
// and no others, compared after lower().
const PYTHON_TRUE = ["y", "yes", "t", "true", "on", "1"];
const PYTHON_FALSE = ["n", "no", "f", "false", "off", "0"];

Deno.test("strtobool() reads the words Python's strtobool reads", () => {
  for (const w of PYTHON_TRUE) {
    assert.equal(strtobool(w), true, w);
    assert.equal(strtobool(` ${w.toUpperCase()} `), true, w);
  }
  for (const w of PYTHON_FALSE) assert.equal(strtobool(w), false, w);
  for (const w of ["", "2", "maybe", "ye", "enable"]) {
    assert.equal(strtobool(w), undefined, w);
  }
});

Deno.test("the worker's env flags and the presets' flags read the same words", () => {
  for (const [word, flag] of [["Yes", true], ["off", false], ["T", true]]) {
    assert.equal(readEnv({ UNSECURED: word as string }).UNSECURED, flag);
    assert.equal(booleanFrom(word as string, !flag), flag);
  }
  // Unset or empty: the default.
  assert.equal(readEnv({ UNSECURED: "" }).UNSECURED, false);
  assert.equal(booleanFrom("", true), true);
  // A word strtobool refuses: the worker names the variable, a preset keeps its default.
  assertEnvRefused(
    { UNSECURED: "maybe" },
    "UNSECURED",
    /expected true or false, got "maybe"/,
  );
  assert.equal(booleanFrom("maybe", true), true);
});
