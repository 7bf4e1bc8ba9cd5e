import assert from "node:assert/strict";
import { startControlPlane } from "../../dev/control_plane.ts";
import { freePort, serveYamlScenario } from "./_scenario.ts";
import { kill } from "../helpers/process.ts";

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

Deno.test("a taken port is beaconed to the autoscaler until SIGTERM", async () => {
  await using cp = await startControlPlane();
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  const child = edgeworker(["run", "--preset", "vllm"], {
    WORKER_PORT: String(port),
    EDGEWORKER_HOST: "127.0.0.1",
    REPORT_ADDR: cp.url,
    CONTAINER_ID: "42",
    MASTER_TOKEN: "secret",
  }).spawn();
  try {
    const report = await cp.waitFor("status", undefined, 10_000);
    const body = report.body as Record<string, unknown>;
    assert.equal(body.id, 42);
    assert.equal(body.mtoken, "secret");
    assert.match(
      String(body.error_msg),
      new RegExp(`Cannot listen on 127\\.0\\.0\\.1:${port} \\(WORKER_PORT\\)`),
    );
    child.kill("SIGTERM");
    const out = await child.output();
    assert.equal(out.code, 1);
  } finally {
    taken.close();
    kill(child, "SIGKILL");
  }
});

Deno.test("a bad config is reported once to the autoscaler, then exit 2", async () => {
  await using cp = await startControlPlane();
  const out = await edgeworker(
    ["run", "--config", "/nonexistent/worker.yaml"],
    {
      WORKER_PORT: String(freePort()),
      REPORT_ADDR: cp.url,
    },
  ).output();
  assert.equal(out.code, 2);
  assert.equal(cp.statusReports.length, 1);
  const body = cp.statusReports[0].body as Record<string, unknown>;
  assert.match(String(body.error_msg), /Worker config invalid: .*worker\.yaml/);
});

Deno.test("BACKEND picks the preset when run has no --preset", async () => {
  const out = await edgeworker(["run"], { BACKEND: "no-such-backend" })
    .output();
  assert.equal(out.code, 2);
  assert.match(
    new TextDecoder().decode(out.stderr),
    /Unknown preset "no-such-backend"/,
  );
});
