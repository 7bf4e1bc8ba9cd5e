import assert from "node:assert/strict";
import { serveYamlScenario } from "./_scenario.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

// `deno compile` needs a runtime download these machines cannot make; the
// bundle is the same single artifact minus the runtime, so it must pass the
// same end-to-end scenario with no project files around it.
Deno.test("the bundled single file runs the whole end-to-end scenario", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--platform=deno", "-o", `${dir}/edgeworker.js`, MAIN],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    await serveYamlScenario([
      "run",
      "-A",
      "--no-config",
      "--unstable-no-legacy-abort",
      `${dir}/edgeworker.js`,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
