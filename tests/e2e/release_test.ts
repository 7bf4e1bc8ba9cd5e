/**
 * The release tasks: `deno task compile` where Deno's runtime base cannot
 * be had, `DENORT_BIN` handling, `deno task release:check`, and the
 * CHANGELOG section that becomes the release notes.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import denoJson from "../../deno.json" with { type: "json" };
import { changelogSection } from "../../tools/changelog.ts";
import { freePort } from "./_scenario.ts";
import { runCommand } from "../../tools/command.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const TOOL_FLAGS = ["run", "-A", "--no-config"];

/** Runs a tool of tools/ the way its deno.json task does. */
async function tool(
  script: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return await runCommand(
    Deno.execPath(),
    [...TOOL_FLAGS, `tools/${script}`, ...args],
    { cwd: ROOT, env: { NO_COLOR: "1", ...env } },
  );
}

Deno.test("the tasks run the tools tested here", () => {
  const tasks = denoJson.tasks as Record<string, string>;
  const cmd = `deno ${TOOL_FLAGS.join(" ")} tools/`;
  assert.equal(tasks.compile, `${cmd}build.ts compile`);
  assert.equal(tasks.bundle, `${cmd}build.ts bundle`);
  assert.equal(tasks["release:check"], `${cmd}release_check.ts`);
});

Deno.test("compile without a reachable runtime base stops with one line pointing at DENORT_BIN and deno task bundle", async () => {
  // An empty DENO_DIR (no cached denort) and a proxy that refuses: the
  // download fails here and on a machine with internet alike.
  const denoDir = await Deno.makeTempDir();
  const outDir = await Deno.makeTempDir();
  const proxy = `http://127.0.0.1:${freePort()}`;
  try {
    const r = await tool("build.ts", ["compile", "--out-dir", outDir], {
      DENO_DIR: denoDir,
      HTTPS_PROXY: proxy,
      HTTP_PROXY: proxy,
      NO_PROXY: "",
      DENORT_BIN: "",
    });
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0],
      /^compile: cannot get Deno's runtime base for x86_64-unknown-linux-gnu \(denort-x86_64-unknown-linux-gnu\.zip from dl\.deno\.land: .*Connection refused.*\)\. Set DENORT_BIN to a denort binary for that target \(one --target per run\), or run `deno task bundle` for dist\/edgeworker\.js, which runs with `deno run`\.$/,
    );
    assert.deepEqual(await Array.fromAsync(Deno.readDir(outDir)), []);
  } finally {
    await Deno.remove(denoDir, { recursive: true });
    await Deno.remove(outDir, { recursive: true });
  }
});

Deno.test("compile honours DENORT_BIN: it must be a file, for one target", async () => {
  const outDir = await Deno.makeTempDir();
  try {
    const missing = await tool("build.ts", ["compile", "--out-dir", outDir], {
      DENORT_BIN: "/nonexistent/denort",
    });
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr.trim(),
      "compile: DENORT_BIN=/nonexistent/denort is not a file. Point it at a denort binary for the target, or run `deno task bundle`.",
    );
    const two = await tool("build.ts", [
      "compile",
      "--target",
      "x86_64-apple-darwin",
      "--target",
      "aarch64-apple-darwin",
    ], { DENORT_BIN: "/nonexistent/denort" });
    assert.equal(two.code, 1);
    assert.equal(
      two.stderr.trim(),
      "compile: DENORT_BIN is the runtime of one target: name it with --target <target>.",
    );
    const unknown = await tool("build.ts", ["compile", "--target", "riscv"]);
    assert.equal(unknown.code, 1);
    assert.match(
      unknown.stderr,
      /^compile: unknown target riscv: expected one of x86_64-unknown-linux-gnu, /,
    );
    assert.deepEqual(await Array.fromAsync(Deno.readDir(outDir)), []);
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});

Deno.test("compile with DENORT_BIN builds the host target with the permission set baked in, not -A", async () => {
  // No denort here: the full deno binary stands in as the runtime base. The
  // result is no working program (deno starts its REPL on it), but its
  // embedded metadata is what `deno compile` wrote for our flags.
  const outDir = await Deno.makeTempDir();
  try {
    const r = await tool("build.ts", ["compile", "--out-dir", outDir], {
      DENORT_BIN: Deno.execPath(),
    });
    assert.equal(r.code, 0, r.stderr);
    const out = `${outDir}/edgeworker-${Deno.build.target}`;
    assert.equal(r.stdout.split(" ")[0], out);
    // The metadata is JSON embedded in the file.
    const bytes = Buffer.from(await Deno.readFile(out));
    const at = bytes.indexOf('"permissions":{');
    assert.ok(at > 0, "permissions in the binary's metadata");
    const end = bytes.indexOf("}", at);
    const p = JSON.parse(bytes.subarray(at + 14, end + 1).toString());
    assert.equal(p.allow_all, undefined);
    assert.deepEqual(p.allow_net, []);
    assert.deepEqual(p.allow_env, []);
    assert.deepEqual(p.allow_read, [
      ".",
      "/var/log",
      "/workspace",
      "/etc/instance.crt",
      "/etc/instance.key",
      "/opt/comfyui-api-wrapper/workflows",
    ]);
    assert.deepEqual(p.allow_write, [".", "/.force_update"]);
    assert.deepEqual(p.allow_run, ["df", "cat"]);
    assert.equal(p.allow_sys, null);
    assert.equal(p.allow_ffi, null);
    assert.equal(p.prompt, false);
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});

Deno.test("release:check passes for v<deno.json version>, builds the bundle and writes the notes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const version = denoJson.version;
    const r = await tool("release_check.ts", [
      "--out-dir",
      dir,
      "--notes",
      `${dir}/notes.md`,
    ], { GITHUB_REF_NAME: `v${version}` });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^release:check v${version}: .* ok`));
    assert.ok((await Deno.stat(`${dir}/edgeworker.js`)).size > 100_000);
    const notes = await Deno.readTextFile(`${dir}/notes.md`);
    const changelog = await Deno.readTextFile(`${ROOT}/CHANGELOG.md`);
    assert.equal(notes, changelogSection(changelog, version) + "\n");
    assert.match(notes, /^First release/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("release:check lists a tag that is not the version and a CHANGELOG without its section", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/CHANGELOG.md`,
      "# Changelog\n\n## [9.9.9]\n\n- other\n",
    );
    const r = await tool("release_check.ts", [
      "v0.0.1",
      "--changelog",
      `${dir}/CHANGELOG.md`,
      "--out-dir",
      dir,
    ]);
    assert.equal(r.code, 1);
    const v = denoJson.version;
    assert.equal(
      r.stderr.trim(),
      [
        `release:check: tag v0.0.1 does not match deno.json version ${v} (expected v${v})`,
        `release:check: ${dir}/CHANGELOG.md has no section for ${v} ("## [${v}] - <date>" and its notes)`,
      ].join("\n"),
    );
    const none = await tool("release_check.ts", [], { GITHUB_REF_NAME: "" });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /give the tag .* or set GITHUB_REF_NAME/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("changelogSection takes one version's notes, up to the next heading", () => {
  const text = [
    "# Changelog",
    "## [Unreleased]",
    "- next",
    "## [1.2.0] - 2026-01-02",
    "",
    "- added x",
    "- fixed y",
    "",
    "## 1.1.0",
    "- old",
    "## [1.0.0]",
    "",
    "[1.2.0]: https://example.invalid/compare",
  ].join("\n");
  assert.equal(changelogSection(text, "1.2.0"), "- added x\n- fixed y");
  assert.equal(changelogSection(text, "1.1.0"), "- old");
  // A heading with nothing under it is no entry.
  assert.equal(changelogSection(text, "1.0.0"), undefined);
  assert.equal(changelogSection(text, "1.2"), undefined);
  assert.equal(changelogSection(text, "1.3.0"), undefined);
});
