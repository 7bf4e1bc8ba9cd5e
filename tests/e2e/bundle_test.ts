/**
 * The release artifact end to end, with the permission set of
 * tools/permissions.ts (the one `deno task compile` bakes in) and nothing
 * more: `deno compile` needs a runtime download these machines cannot make,
 * so the bundle (the same program minus the runtime) stands in for the
 * binary. With `EDGEWORKER_BINARY=<compiled binary>` (release.yml) the same
 * scenario runs against that binary instead.
 */
import assert from "node:assert/strict";
import { startControlPlane } from "../../dev/control_plane.ts";
import { controlPlaneKeys } from "../helpers/dev.ts";
import { waitFor } from "../helpers/http.ts";
import { startHelloWorldServer } from "../../dev/hello_world_server.ts";
import { runCommand } from "../../tools/command.ts";
import {
  freePort,
  serveYamlScenario,
  waitReady,
  workerEnv,
} from "./_scenario.ts";
import {
  WORKER_PERMISSION_FLAGS,
  WORKER_RUNTIME_FLAGS,
} from "../../tools/permissions.ts";
import denoJson from "../../deno.json" with { type: "json" };

const ROOT = new URL("../..", import.meta.url).pathname;
const BINARY = Deno.env.get("EDGEWORKER_BINARY");

let built: Promise<string> | undefined;

/** Builds the bundle once per file, as `deno task bundle` does. */
function bundlePath(): Promise<string> {
  built ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "edgeworker-bundle-" });
    const out = `${dir}/edgeworker.js`;
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "tools/build.ts", "bundle", "--out", out],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    return out;
  })();
  return built;
}

/** Program and leading arguments that start the artifact. */
async function artifact(
  permissions: readonly string[] = WORKER_PERMISSION_FLAGS,
): Promise<[string, string[]]> {
  if (BINARY) return [BINARY, []];
  return [Deno.execPath(), [
    "run",
    "--no-config",
    ...WORKER_RUNTIME_FLAGS,
    ...permissions,
    await bundlePath(),
  ]];
}

async function git(args: string[]): Promise<string> {
  const r = await new Deno.Command("git", { args, cwd: ROOT, stdout: "piped" })
    .output();
  return new TextDecoder().decode(r.stdout).trim();
}

Deno.test("the artifact's --version names deno.json's version and the commit it was built from", async () => {
  const [cmd, pre] = await artifact();
  const out = await new Deno.Command(cmd, {
    args: [...pre, "--version"],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.equal(out.code, 0);
  const head = await git(["rev-parse", "--short=12", "HEAD"]);
  assert.match(
    text,
    new RegExp(
      `^edgeworker ${denoJson.version} \\(commit ${head}(-dirty)?\\)$`,
    ),
  );
  // From source there is no build: "dev".
  const source = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}/main.ts`, "--version"],
    stdout: "piped",
  }).output();
  assert.equal(
    new TextDecoder().decode(source.stdout),
    `edgeworker ${denoJson.version} (dev)\n`,
  );
});

// A compiled binary takes no deno arguments: the scenario below covers it.
if (!BINARY) {
  Deno.test("the bundle runs the YAML end-to-end scenario with only its permission set", async () => {
    const [, pre] = await artifact();
    await serveYamlScenario(pre);
  });
}

Deno.test("with only its permission set the artifact verifies signatures, tails the model log, benchmarks, reports and drains", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-perm-" });
  const cp = await startControlPlane({ keyPair: await controlPlaneKeys() });
  const model = await startHelloWorldServer({
    logFile: `${dir}/model.log`,
    msPerToken: 2,
  });
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  cp.setWorkerUrl(base);
  const [cmd, pre] = await artifact();
  const child = new Deno.Command(cmd, {
    args: [...pre, "run", "--preset", "hello_world"],
    cwd: dir,
    clearEnv: true,
    env: workerEnv(port, {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      REPORT_ADDR: cp.url,
      CONTAINER_ID: "11",
      MODEL_SERVER_URL: model.url,
      // Relative, as templates set it: resolved in the working directory.
      MODEL_LOG: "model.log",
      BENCHMARK_RUNS: "1",
      BENCHMARK_CONCURRENCY: "2",
      EDGEWORKER_DRAIN_SECONDS: "2",
    }),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  try {
    await waitReady(base, 30_000);
    // The benchmark cache went to the working directory (write ".").
    const cached = await Deno.readTextFile(`${dir}/.has_benchmark`);
    assert.ok(Number(cached) > 0, `.has_benchmark holds ${cached}`);
    // A signed request with an envelope too big to come with the headers:
    // the worker watches /proc/net/tcp for its client while it runs.
    const auth = await (await fetch(`${cp.url}/route/`, {
      method: "POST",
      body: JSON.stringify({ endpoint: "e", api_key: "k", cost: 100 }),
    })).json();
    const res = await fetch(`${base}/generate`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        auth_data: auth,
        payload: { prompt: "hello ".repeat(400), max_response_tokens: 300 },
      }),
    });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).tokens, 300);
    // The operator routes (process figures come from Deno.memoryUsage).
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^edgeworker_/m);
    assert.equal((await (await fetch(`${base}/status`)).json()).state, "ready");
    // Reports went out with a measured disk usage (df ran). The figure is
    // the growth since the last report: 64 MiB written here outweighs what
    // the tests running beside this one remove meanwhile.
    await Deno.writeFile(`${dir}/grown.bin`, new Uint8Array(64 * 2 ** 20));
    const report = await cp.waitFor(
      "status",
      (b) => Number((b as Record<string, unknown>).cur_perf) > 0,
      10_000,
    );
    assert.equal((report.body as Record<string, unknown>).id, 11);
    await waitFor(
      () =>
        cp.statusReports.some((r) =>
          Number((r.body as Record<string, unknown>).additional_disk_usage) >
            0
        ),
      10_000,
      "a report with disk usage",
    );
  } finally {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    const out = await output;
    const text = new TextDecoder().decode(out.stdout) +
      new TextDecoder().decode(out.stderr);
    await model.close();
    await cp.close();
    await Deno.remove(dir, { recursive: true });
    assert.equal(out.code, 0, text);
    // A permission the set lacks shows up as Deno's "Requires ... access".
    // None may: /proc/net/tcp, which Deno opens only with --allow-all, is
    // read through `cat` (--allow-run=cat), so the client-gone watch stays on.
    const denied = new Set(
      [...text.matchAll(/Requires \w+ access(?: to "([^"]*)")?/g)]
        .map((m) => m[1] ?? m[0]),
    );
    assert.deepEqual([...denied], [], text);
    assert.doesNotMatch(text, /Clients that leave are noticed only/);
    assert.doesNotMatch(text, /Cannot measure disk usage/);
  }
});

/** Runs the artifact with `permissions`; exit code and output. */
async function runWith(
  permissions: readonly string[],
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; text: string }> {
  const [cmd, pre] = await artifact(permissions);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/worker.yaml`,
      "modelServerUrl: http://127.0.0.1:1\nreadiness: none\nhandlers:\n  - route: /x\n",
    );
    const out = await runCommand(cmd, [...pre, ...args], {
      cwd: dir,
      env: workerEnv(freePort(), {
        UNSECURED: "true",
        EDGEWORKER_BENCHMARK: "skip",
        ...env,
      }),
    });
    return { code: out.code, text: out.stdout + out.stderr };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const without = (prefix: string) =>
  WORKER_PERMISSION_FLAGS.filter((f) => !f.startsWith(prefix));

// A binary's permissions are baked in: only the bundle can drop one.
if (!BINARY) {
  Deno.test("a run without a needed permission stops at once with a message naming it", async () => {
    const args = ["run", "--config", "worker.yaml"];
    const noNet = await runWith(without("--allow-net"), args);
    assert.equal(noNet.code, 1, noNet.text);
    assert.match(noNet.text, /Requires net access to "127\.0\.0\.1:\d+"/);

    const noEnv = await runWith(without("--allow-env"), args);
    assert.notEqual(noEnv.code, 0, noEnv.text);
    assert.match(noEnv.text, /Requires env access/);

    const noRead = await runWith(without("--allow-read"), args);
    assert.equal(noRead.code, 2, noRead.text);
    assert.match(noRead.text, /Requires read access to "worker\.yaml"/);
  });
}
