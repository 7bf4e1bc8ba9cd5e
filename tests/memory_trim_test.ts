/**
 * Memory given back after a burst of requests: with `DENO_USR2_MEMORY_TRIM`
 * set the worker signals itself once quiet, and its RSS falls back towards
 * idle; without it nothing is sent (the signal would end the process).
 */
import assert from "node:assert/strict";
import { MemoryTrim } from "../lib/worker/memory_trim.ts";
import { startUpstream } from "./helpers/upstream.ts";
import { envelope } from "./helpers/worker.ts";
import { waitFor } from "./helpers/http.ts";
import { spawnYamlWorker, waitReady } from "./e2e/_scenario.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const DENO_JSON = new URL("../deno.json", import.meta.url).pathname;

Deno.test({
  name:
    "MemoryTrim trims at the 1st and 3rd quiet look after start-up, at the 15th and 17th after requests, never while busy",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `--config=${DENO_JSON}`,
        new URL("./helpers/memory_trim_schedule.ts", import.meta.url).pathname,
      ],
      env: { DENO_USR2_MEMORY_TRIM: "1" },
      stdout: "piped",
    }).output();
    assert.equal(out.code, 0);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), {
      enabled: true,
      afterStartup: 2,
      whileBusy: 2,
      quietAWhile: 2,
      longQuiet: 3,
      quietAgain: 4,
      later: 5,
    });
  },
});

Deno.test("MemoryTrim does nothing without DENO_USR2_MEMORY_TRIM", () => {
  const trim = new MemoryTrim({ usr2Trim: undefined, intervalMs: 3_600_000 });
  assert.equal(trim.enabled, false);
  trim.start();
  trim.look();
  assert.equal(trim.trims, 0);
  trim.close();
});

/** VmRSS and VmHWM of `pid` in bytes. */
async function memory(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = (name: string) =>
    Number(status.match(new RegExp(`${name}:\\s+(\\d+) kB`))![1]) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

Deno.test({
  name:
    "after a burst of requests the worker gives at least half of the memory it grew back, and keeps serving",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const up = startUpstream();
    const dir = await Deno.makeTempDir();
    const { child, base } = await spawnYamlWorker(
      dir,
      ["run", "-A", `--config=${DENO_JSON}`, MAIN],
      [
        `modelServerUrl: ${up.url}`,
        `handlers:`,
        `  - { route: /echo, allowParallelRequests: true, maxQueueTime: null }`,
      ],
      { DENO_USR2_MEMORY_TRIM: "1", EDGEWORKER_LOG_LEVEL: "error" },
    );
    try {
      await waitReady(base);
      // Start-up's own trims (2 and 6 s after start) come first.
      await new Promise((r) => setTimeout(r, 7000));
      const idle = (await memory(child.pid)).rss;
      // A burst: 32 clients, 2,500 requests of ~64 KiB answers.
      const body = envelope({ text: "x".repeat(64 * 1024) });
      let left = 2500;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (left-- > 0) {
            const res = await fetch(`${base}/echo`, { method: "POST", body });
            assert.equal(res.status, 200);
            await res.arrayBuffer();
          }
        }),
      );
      const peak = (await memory(child.pid)).hwm;
      assert.ok(
        peak - idle > 20 * 1024 * 1024,
        `the burst grew RSS by only ${(peak - idle) >> 20} MiB`,
      );
      // Quiet from now: trims 30 and 34 s later.
      await waitFor(
        async () => (await memory(child.pid)).rss < idle + (peak - idle) / 2,
        45_000,
        "RSS back below halfway between idle and peak",
      );
      const res = await fetch(`${base}/echo`, {
        method: "POST",
        body: envelope({ after: 1 }),
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    } finally {
      child.kill("SIGTERM");
      await child.output();
      await up.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
