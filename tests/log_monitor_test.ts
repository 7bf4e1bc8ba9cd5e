import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type LogEvent,
  LogMonitor,
  type LogMonitorOptions,
} from "../lib/model/log_monitor.ts";
import { waitFor } from "./helpers/http.ts";

const ACTIONS = {
  onLoad: ["Application startup complete."],
  onError: ["Traceback (most recent call last):", /CUDA out of memory/i],
  onInfo: [/loading weights: \d+%/],
};

interface Harness {
  path: string;
  events: LogEvent[];
  monitor: LogMonitor;
  [Symbol.asyncDispose](): Promise<void>;
}

async function harness(
  options: Partial<LogMonitorOptions> & { create?: string } = {},
): Promise<Harness> {
  const { create, ...rest } = options;
  const dir = await Deno.makeTempDir({ prefix: "log_monitor_" });
  const path = join(dir, "model.log");
  if (create !== undefined) await Deno.writeTextFile(path, create);
  const events: LogEvent[] = [];
  const monitor = new LogMonitor({
    path,
    pollIntervalMs: 200,
    actions: ACTIONS,
    onEvent: (e) => events.push(e),
    ...rest,
  });
  await monitor.start();
  return {
    path,
    events,
    monitor,
    async [Symbol.asyncDispose]() {
      await monitor.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function append(path: string, data: string | Uint8Array): Promise<void> {
  return typeof data === "string"
    ? Deno.writeTextFile(path, data, { append: true })
    : Deno.writeFile(path, data, { append: true });
}

const kinds = (events: LogEvent[]): string[] => events.map((e) => e.kind);

/** Waits for as many events as `expected` names, waits 100 ms for any
 * extra one, then checks their kinds. */
async function settlesOn(h: Harness, expected: string[]): Promise<void> {
  await waitFor(() => h.events.length === expected.length, 2000);
  await sleep(100);
  assert.deepEqual(kinds(h.events), expected);
}

Deno.test("LogMonitor fires on a line written in pieces, once complete", async () => {
  await using h = await harness({ create: "" });
  await append(h.path, "INFO:     Application startup ");
  await sleep(150);
  assert.equal(h.events.length, 0, "a partial line must not fire");
  await append(h.path, "complete.\r\n");
  await waitFor(() => h.events.length === 1, 2000);
  assert.deepEqual(h.events[0], {
    kind: "load",
    line: "INFO:     Application startup complete.",
    pattern: "Application startup complete.",
  });
  // A multi-byte character split across two writes decodes right.
  const bytes = new TextEncoder().encode("é CUDA Out Of Memory\n");
  await append(h.path, bytes.subarray(0, 1));
  await sleep(50);
  await append(h.path, bytes.subarray(1));
  await waitFor(() => h.events.length === 2, 2000);
  assert.equal(h.events[1].line, "é CUDA Out Of Memory");
  assert.equal(h.events[1].pattern, "CUDA out of memory");
});

Deno.test("LogMonitor from=start fires on a load line already in the file", async () => {
  await using h = await harness({
    create: "old\nApplication startup complete.\n",
  });
  await waitFor(() => h.events.length === 1, 2000);
  assert.deepEqual(kinds(h.events), ["load"]);
});

Deno.test("LogMonitor from=end ignores lines written before start", async () => {
  await using h = await harness({
    from: "end",
    create: "Application startup complete.\nhalf a li",
  });
  await append(h.path, "ne\nTraceback (most recent call last):\n");
  await settlesOn(h, ["error"]);
  assert.equal(h.events[0].line, "Traceback (most recent call last):");
});

Deno.test("LogMonitor waits for a file created late and reads all of it", async () => {
  // Poll interval far beyond the deadline: the directory watch must see it.
  await using h = await harness({ from: "end", pollIntervalMs: 60_000 });
  await Deno.writeTextFile(h.path, "Application startup complete.\n");
  await waitFor(() => h.events.length === 1, 1000);
  assert.deepEqual(kinds(h.events), ["load"]);
});

Deno.test("LogMonitor works by polling alone (no watch events)", async () => {
  await using h = await harness({ watch: false, pollIntervalMs: 30 });
  await Deno.writeTextFile(h.path, "loading weights: 40%\n");
  await waitFor(() => h.events.length === 1, 2000);
  await append(h.path, "Application startup complete.\n");
  await waitFor(() => h.events.length === 2, 2000);
  assert.deepEqual(kinds(h.events), ["info", "load"]);
});

// Synchronous on purpose: no monitor pass can run between the steps.
function rotate(path: string, oldLine: string, newContent: string): void {
  Deno.renameSync(path, `${path}.1`);
  Deno.writeTextFileSync(`${path}.1`, oldLine, { append: true });
  Deno.writeTextFileSync(path, newContent);
}

Deno.test("LogMonitor follows rotation by rename and recreate", async () => {
  await using h = await harness({ create: "loading weights: 10%\n" });
  await waitFor(() => h.events.length === 1, 2000);
  // The old file's last line (even unterminated) is drained before the switch.
  rotate(h.path, "loading weights: 20%", "loading weights: 30%\n");
  await waitFor(() => h.events.length === 3, 2000);
  assert.deepEqual(h.events.map((e) => e.line), [
    "loading weights: 10%",
    "loading weights: 20%",
    "loading weights: 30%",
  ]);
  // Later writes to the renamed file are not followed; the new file is.
  await append(`${h.path}.1`, "Traceback (most recent call last):\n");
  await append(h.path, "Application startup complete.\n");
  await settlesOn(h, ["info", "info", "info", "load"]);
});

Deno.test("LogMonitor starts over after truncation in place (copytruncate)", async () => {
  await using h = await harness({
    create: "x".repeat(200) + "\nloading weights: 50%\n",
  });
  await waitFor(() => h.events.length === 1, 2000);
  await Deno.copyFile(h.path, `${h.path}.1`);
  await Deno.truncate(h.path, 0);
  await append(h.path, "Application startup complete.\n");
  await waitFor(() => h.events.length === 2, 2000);
  assert.deepEqual(kinds(h.events), ["info", "load"]);
});

Deno.test("LogMonitor survives very long lines and binary garbage", async () => {
  await using h = await harness({ create: "", maxLineLength: 4096 });
  const garbage = new Uint8Array(100_000);
  for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919) % 256;
  await append(h.path, garbage);
  // Pattern in the kept head of a 1 MB line fires; one in the cut tail does not.
  await append(h.path, "\nloading weights: 1%" + "y".repeat(1 << 20));
  await append(h.path, "Application startup complete.\n");
  await append(h.path, "\u0000\u00ff\nApplication startup complete.\n");
  await settlesOn(h, ["info", "load"]);
  assert.equal(h.events[0].line.length, 4096);
  assert.equal(h.events[1].line, "Application startup complete.");
});

Deno.test("LogMonitor checks onLoad, then onError, then onInfo: one event per line", async () => {
  await using h = await harness({ create: "" });
  await append(
    h.path,
    [
      "nothing here",
      "loading weights: 99% Traceback (most recent call last):",
      "Application startup complete. CUDA out of memory",
      "RuntimeError: cuda OUT OF memory (tried 2 GiB)",
      "",
    ].join("\n"),
  );
  await settlesOn(h, ["error", "load", "error"]);
  assert.equal(
    h.events[2].line,
    "RuntimeError: cuda OUT OF memory (tried 2 GiB)",
  );
  assert.equal(h.events[2].pattern, "CUDA out of memory");
});

Deno.test("LogMonitor.close() stops events and releases resources", async () => {
  const h = await harness({ create: "" });
  await h.monitor.close();
  await append(h.path, "Application startup complete.\n");
  await sleep(100);
  assert.equal(h.events.length, 0);
  await h[Symbol.asyncDispose]();
});

Deno.test("LogMonitor rejects an empty string pattern", () => {
  assert.throws(
    () =>
      new LogMonitor({
        path: "x.log",
        actions: { onError: [""] },
        onEvent: () => {},
      }),
    TypeError,
  );
});

Deno.test("LogMonitor matches lines as a terminal shows them: colours removed, a lone \\r ends a line", async () => {
  await using h = await harness({ create: "" });
  // A tqdm bar redrawn with \r, then (no \n in between) a fatal line, as a
  // pty passes it to log-tee; then a coloured uvicorn line.
  await append(
    h.path,
    "\rloading weights: 10%\rloading weights: 20%" +
      "\x1b[1;31mRuntimeError\x1b[0m: CUDA out of memory\r\n" +
      "\x1b[32mINFO\x1b[0m:     Application startup complete.\n",
  );
  await settlesOn(h, ["info", "error", "load"]);
  // What the terminal shows after the last redraw: the bar, then the error.
  assert.equal(
    h.events[1].line,
    "loading weights: 20%RuntimeError: CUDA out of memory",
  );
  assert.equal(h.events[2].line, "INFO:     Application startup complete.");
});

Deno.test("LogMonitor: a progress bar without newline never hides a later line", async () => {
  await using h = await harness({ create: "", maxLineLength: 1024 });
  // 200 KB of \r redraws (far over the line limit), then the load line.
  let bar = "";
  for (let i = 0; i < 2000; i++) bar += `\rDownloading: ${"#".repeat(80)} ${i}`;
  await append(h.path, bar + "\nApplication startup complete.\n");
  await waitFor(() => h.events.some((e) => e.kind === "load"), 2000);
});

Deno.test("LogMonitor follows log-tee's rotation by rename and reads no copied line twice", async () => {
  const { LogFile } = await import("../dev/_log.ts");
  const dir = await Deno.makeTempDir({ prefix: "log_monitor_tee_" });
  const path = join(dir, "vllm.log");
  await Deno.writeTextFile(path, "loading weights: 0% (previous boot)\n");
  // base-image a7552d1's log-tee at a small scale: rotate above 8 KiB,
  // keep the last 2 KiB, check every 1 KiB.
  const tee = new LogFile(path, {
    mode: "log-tee@base-image-a7552d1",
    maxBytes: 8192,
    keepBytes: 2048,
    checkBytes: 1024,
  });
  // logging.sh renamed the previous boot's log to .old.
  assert.match(await Deno.readTextFile(`${path}.old`), /previous boot/);
  const events: LogEvent[] = [];
  const monitor = new LogMonitor({
    path,
    pollIntervalMs: 50,
    actions: ACTIONS,
    onEvent: (e) => events.push(e),
  });
  try {
    await monitor.start();
    const total = 120;
    for (let i = 0; i < total; i++) {
      tee.write(`INFO loading weights: ${i}% ${"x".repeat(200)}`);
      await tee.flush();
      // Let the monitor see each file (and rename) as a tailer would.
      if (i % 10 === 9) await sleep(60);
    }
    tee.write("INFO:     Application startup complete.");
    await tee.flush();
    await waitFor(() => events.some((e) => e.kind === "load"), 3000);
    assert.ok(tee.rotations >= 2, `rotations: ${tee.rotations}`);
    const seen = events.filter((e) => e.kind === "info").map((e) =>
      Number(/weights: (\d+)%/.exec(e.line)![1])
    );
    // Every line once, in order, none twice; none of the previous boot.
    assert.deepEqual(seen, Array.from({ length: total }, (_, i) => i));
  } finally {
    await monitor.close();
    await Deno.remove(dir, { recursive: true });
  }
});
