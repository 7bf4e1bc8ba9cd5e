/**
 * `deno task release:check [<tag>]`: what can be checked before tagging,
 * and what release.yml checks first. The tag comes from the argument or
 * `GITHUB_REF_NAME`. Checks that the tag is `v` + deno.json's version, that
 * CHANGELOG.md has a section for that version, and that the bundle builds
 * and prints that version. Every problem is listed; exit 1 if any.
 *
 * Options: `--changelog <file>` (default CHANGELOG.md), `--notes <file>`
 * writes the version's CHANGELOG section there (the release notes),
 * `--out-dir <dir>` for the bundle (default dist).
 *
 * @module
 */
import { parseArgs } from "node:util";
import denoJson from "../deno.json" with { type: "json" };
import { bundle } from "./build.ts";
import { changelogSection } from "./changelog.ts";
import {
  WORKER_PERMISSION_FLAGS,
  WORKER_RUNTIME_FLAGS,
} from "./permissions.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

async function main(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      changelog: { type: "string", default: `${ROOT}/CHANGELOG.md` },
      notes: { type: "string" },
      "out-dir": { type: "string", default: `${ROOT}/dist` },
    },
  });
  const tag = positionals[0] ?? Deno.env.get("GITHUB_REF_NAME");
  if (!tag) {
    console.error(
      "release:check: give the tag (deno task release:check v" +
        `${denoJson.version}) or set GITHUB_REF_NAME`,
    );
    return 1;
  }
  const version = denoJson.version;
  const problems: string[] = [];
  if (tag !== `v${version}`) {
    problems.push(
      `tag ${tag} does not match deno.json version ${version} (expected v${version})`,
    );
  }
  let notes: string | undefined;
  try {
    notes = changelogSection(
      await Deno.readTextFile(values.changelog),
      version,
    );
    if (!notes) {
      problems.push(
        `${values.changelog} has no section for ${version} ("## [${version}] - <date>" and its notes)`,
      );
    }
  } catch (e) {
    problems.push(`cannot read ${values.changelog}: ${e}`);
  }
  const out = `${values["out-dir"]}/edgeworker.js`;
  let size = 0;
  try {
    size = await bundle(out);
    const run = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-config",
        ...WORKER_RUNTIME_FLAGS,
        ...WORKER_PERMISSION_FLAGS,
        out,
        "--version",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const printed = new TextDecoder().decode(run.stdout).trim();
    if (!printed.startsWith(`edgeworker ${version} `)) {
      problems.push(`the bundle's --version printed "${printed}"`);
    }
  } catch (e) {
    problems.push(e instanceof Error ? e.message : String(e));
  }
  if (problems.length > 0) {
    for (const p of problems) console.error(`release:check: ${p}`);
    return 1;
  }
  if (values.notes) await Deno.writeTextFile(values.notes, notes + "\n");
  console.log(
    `release:check ${tag}: version, CHANGELOG section and bundle ` +
      `(${out}, ${(size / 1e6).toFixed(1)} MB) ok`,
  );
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
