/**
 * The end-to-end scenario shared by the source and bundle tests: a YAML
 * worker in a subprocess serves JSON and streams, then drains on SIGTERM.
 */
import assert from "node:assert/strict";
import { startUpstream } from "../helpers/upstream.ts";
import { envelope } from "../helpers/worker.ts";
import { post, waitFor } from "../helpers/http.ts";
import { kill } from "../helpers/process.ts";

/** A port that was free a moment ago. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * The env of a worker subprocess serving on `port`: 127.0.0.1 only, no
 * colours, its second (HTTP) port on one the kernel picks; `extra` on top.
 * (A port found free and closed again can be taken by another test's
 * connection before the worker binds it: a parallel run once lost a worker
 * that way. No caller uses the second port.)
 */
export function workerEnv(
  port: number,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    NO_COLOR: "1",
    WORKER_PORT: String(port),
    WORKER_HTTP_PORT: "0",
    EDGEWORKER_HOST: "127.0.0.1",
    ...extra,
  };
}

/** Waits until `GET base/ready` answers 200. */
export async function waitReady(
  base: string,
  timeoutMs = 15000,
): Promise<void> {
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
    timeoutMs,
    `${base} ready`,
  );
}

/** A worker subprocess started by {@linkcode spawnYamlWorker}. */
export interface YamlWorker {
  child: Deno.ChildProcess;
  /** Its base URL (a free port on 127.0.0.1). */
  base: string;
}

/**
 * Writes `yaml` (lines) to `<dir>/worker.yaml` and spawns
 * `deno <denoArgs> run --config` on it in `dir`, on free ports, unsecured,
 * with `env` on top; stdout and stderr are piped.
 */
export async function spawnYamlWorker(
  dir: string,
  denoArgs: string[],
  yaml: string[],
  env: Record<string, string> = {},
): Promise<YamlWorker> {
  const port = freePort();
  await Deno.writeTextFile(`${dir}/worker.yaml`, yaml.join("\n"));
  const child = new Deno.Command(Deno.execPath(), {
    args: [...denoArgs, "run", "--config", `${dir}/worker.yaml`],
    cwd: dir,
    env: workerEnv(port, { UNSECURED: "true", ...env }),
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return { child, base: `http://127.0.0.1:${port}` };
}

/** Runs `deno <denoArgs> run --config <yaml>` and checks what a user sees. */
export async function serveYamlScenario(denoArgs: string[]): Promise<void> {
  const up = startUpstream();
  const dir = await Deno.makeTempDir();
  const { child, base } = await spawnYamlWorker(dir, denoArgs, [
    `modelServerUrl: ${up.url}`,
    `modelHealthUrl: /health`,
    `handlers:`,
    `  - route: /echo`,
    `    allowParallelRequests: true`,
    `    workload: { kind: field, path: max_tokens, default: 1 }`,
    `  - route: /stream`,
    `    allowParallelRequests: true`,
  ]);
  try {
    await waitReady(base);
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
    // A stream in flight when SIGTERM arrives still completes.
    const slow = post(base, "/stream", envelope({ chunks: 5, gap_ms: 100 }));
    await waitFor(() => up.bodies.length === 3);
    child.kill("SIGTERM");
    const body = await (await slow).text();
    assert.match(body, /data: \{"i":4\}/);
    const { code } = await child.status;
    assert.equal(code, 0);
  } finally {
    kill(child, "SIGKILL");
    await child.output().catch(() => {});
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
}
