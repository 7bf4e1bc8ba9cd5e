import assert from "node:assert/strict";
import { startUpstream } from "../helpers/upstream.ts";
import { envelope, post, waitFor } from "../helpers/worker.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

function edgeworker(args: string[], env: Record<string, string> = {}) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  });
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("edgeworker run --config serves a YAML worker and drains on SIGTERM", async () => {
  const up = startUpstream();
  const dir = await Deno.makeTempDir();
  const port = freePort();
  await Deno.writeTextFile(
    `${dir}/worker.yaml`,
    [
      `modelServerUrl: ${up.url}`,
      `modelHealthUrl: /health`,
      `handlers:`,
      `  - route: /echo`,
      `    allowParallelRequests: true`,
      `    workload: { kind: field, path: max_tokens, default: 1 }`,
      `  - route: /stream`,
      `    allowParallelRequests: true`,
    ].join("\n"),
  );
  const child = edgeworker(["run", "--config", `${dir}/worker.yaml`], {
    WORKER_PORT: String(port),
    WORKER_HTTP_PORT: String(freePort()),
    UNSECURED: "true",
    EDGEWORKER_HOST: "127.0.0.1",
    EDGEWORKER_BENCHMARK_FILE: `${dir}/.has_benchmark`,
  }).spawn();
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitFor(
      async () => {
        try {
          const r = await fetch(`${base}/ready`);
          await r.body?.cancel();
          return r.status === 200;
        } catch {
          return false;
        }
      },
      15000,
      "worker ready",
    );
    const res = await post(base, "/echo", envelope({ max_tokens: 7 }));
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { received: { max_tokens: 7 } });
    const streaming = await post(
      base,
      "/stream",
      envelope({ chunks: 3, gap_ms: 20 }),
    );
    assert.match(await streaming.text(), /data: \[DONE\]/);
    const status = await (await fetch(`${base}/status`)).json();
    assert.equal(status.state, "ready");
    // A slow request in flight when SIGTERM arrives still completes.
    const slow = post(base, "/stream", envelope({ chunks: 5, gap_ms: 100 }));
    await waitFor(() => up.bodies.length === 3);
    child.kill("SIGTERM");
    const body = await (await slow).text();
    assert.match(body, /data: \{"i":4\}/);
    const { code } = await child.status;
    assert.equal(code, 0);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await child.output().catch(() => {});
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
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
