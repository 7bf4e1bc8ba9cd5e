import assert from "node:assert/strict";
import { serveYamlScenario } from "./_scenario.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

function edgeworker(args: string[], env: Record<string, string> = {}) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  });
}

Deno.test("edgeworker run --config serves a YAML worker and drains on SIGTERM", async () => {
  await serveYamlScenario(["run", "-A", MAIN]);
});

Deno.test("a bad YAML config exits 2 and lists every problem with its path", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/bad.yaml`,
    [
      "modelServerUrl: not-a-url",
      "handlers:",
      "  - route: /ok",
      "  - route: missing-slash",
      "    maxQueueTime: -1",
      "    colour: blue",
    ].join("\n"),
  );
  const out = await edgeworker(["run", "--config", `${dir}/bad.yaml`]).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 2);
  assert.match(stderr, /modelServerUrl: expected http\(s\) URL/);
  assert.match(
    stderr,
    /handlers\[1\]\.route: expected string starting with "\/"/,
  );
  assert.match(stderr, /handlers\[1\]\.maxQueueTime: /);
  assert.match(stderr, /handlers\[1\]\.colour: unknown key/);
  const missing = await edgeworker(["run", "--config", `${dir}/nope.yaml`])
    .output();
  assert.equal(missing.code, 2);
  assert.match(new TextDecoder().decode(missing.stderr), /nope\.yaml/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("schema, presets, --version and unknown presets", async () => {
  const schema = await edgeworker(["schema"]).output();
  assert.equal(schema.code, 0);
  const json = JSON.parse(new TextDecoder().decode(schema.stdout));
  assert.equal(json.type, "object");
  assert.ok(json.properties.handlers);
  assert.deepEqual(json.required, ["modelServerUrl", "handlers"]);

  const presets = await edgeworker(["presets"]).output();
  const text = new TextDecoder().decode(presets.stdout);
  assert.equal(presets.code, 0);
  assert.match(
    text,
    /vllm: .*\n {2}routes: {7}\/v1\/completions \[benchmark\], \/v1\/chat\/completions/,
  );
  assert.match(text, /log file: {5}\/var\/log\/portal\/vllm\.log/);

  const version = await edgeworker(["--version"]).output();
  assert.match(
    new TextDecoder().decode(version.stdout),
    /^edgeworker \d+\.\d+\.\d+/,
  );

  const unknown = await edgeworker(["run", "--preset", "nope"]).output();
  assert.equal(unknown.code, 2);
  assert.match(
    new TextDecoder().decode(unknown.stderr),
    /Unknown preset "nope": expected one of vllm/,
  );

  const none = await edgeworker(["run"]).output();
  assert.equal(none.code, 2);
});
