import assert from "node:assert/strict";
import { diskUsedGb, parseDfUsedKib } from "../lib/autoscaler/disk_usage.ts";
import { captureLogs } from "./helpers/logs.ts";

Deno.test("parses df -Pk output", () => {
  const header =
    "Filesystem     1024-blocks     Used Available Capacity Mounted on\n";
  assert.equal(
    parseDfUsedKib(header + "/dev/vda 264212084 22823832 83567080 22% /\n"),
    22823832,
  );
  // Spaces in the file system and mount names do not shift the columns.
  assert.equal(
    parseDfUsedKib(header + "my fs 1000 250 750 25% /mnt/with space\n"),
    250,
  );
  assert.equal(parseDfUsedKib(header + "overlay 10 0 10 0% /\n"), 0);
  assert.equal(parseDfUsedKib(header), undefined);
  assert.equal(parseDfUsedKib(""), undefined);
});

Deno.test("measures / in GB of 2^30 bytes, as psutil used / 2**30", async () => {
  const gb = await diskUsedGb("/");
  assert.ok(Number.isFinite(gb) && gb > 0, `got ${gb}`);
  const out = await new Deno.Command("df", { args: ["-Pk", "/"] }).output();
  const kib = parseDfUsedKib(new TextDecoder().decode(out.stdout))!;
  // Within 1 GB: other processes may write meanwhile.
  assert.ok(Math.abs(gb - kib / 2 ** 20) < 1, `${gb} vs ${kib / 2 ** 20}`);
  assert.ok(Math.abs((await diskUsedGb()) - gb) < 1, "default path is /");
});

Deno.test("errors are logged once and return the previous value", async () => {
  await using logs = await captureLogs();
  const { records } = logs;
  // Never measured: NaN (unknown), not a fake 0.
  const missing = `/nonexistent-${crypto.randomUUID()}`;
  assert.ok(Number.isNaN(await diskUsedGb(missing)));
  assert.ok(Number.isNaN(await diskUsedGb(missing)));
  assert.equal(records.length, 1);
  assert.equal(records[0].level, "warning");

  // Measured once, then the path vanishes: the last value is kept.
  const dir = await Deno.makeTempDir({ prefix: "disk_usage_" });
  const first = await diskUsedGb(dir);
  assert.ok(Number.isFinite(first));
  await Deno.remove(dir);
  assert.equal(await diskUsedGb(dir), first);
  assert.equal(await diskUsedGb(dir), first);
  assert.equal(records.length, 2, "one more warning for the new path");
});

Deno.test("does not block the event loop", async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  try {
    await Promise.all(Array.from({ length: 8 }, () => diskUsedGb("/")));
  } finally {
    clearInterval(timer);
  }
  assert.ok(ticks > 0, "timers ran while df was running");
});
