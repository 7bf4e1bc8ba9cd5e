/**
 * `deno task bench --quick` runs end to end: every process starts, every
 * request of every run succeeds, the table and the targets are printed and
 * the JSON is written. Figures are printed, never asserted (the machine
 * running the tests is shared; figures belong in README's benchmark table).
 *
 * @module
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("deno task bench --quick: zero errors, table and targets printed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-bench-smoke-" });
  try {
    const json = `${dir}/bench.json`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "bench", "--quick", "--json", json],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    // Shown on the test's output: the figures of this run.
    console.log(stdout);
    assert.equal(
      out.code,
      0,
      `bench failed:\n${stdout}\n${new TextDecoder().decode(out.stderr)}`,
    );
    for (
      const row of [
        /^\s+direct\s+minimal proxy\s+edgeworker\s+UNSECURED$/m,
        /^req\/s, c=1\s+\d+\s+\d+\s+\d+\s+\d+$/m,
        /^req\/s, c=32\s+\d+\s+\d+\s+\d+\s+\d+$/m,
        /^CPU µs\/request, c=32(\s+\d+){4}$/m,
        /^SSE 64 total p50\/p99 ms/m,
        /^peak RSS \(VmHWM\) MB(\s+[\d.]+){4}$/m,
        /^startup to \/health ms(\s+\d+){4}$/m,
        /^errors\s+0\s+0\s+0\s+0$/m,
        /^c=32 signed throughput \/ minimal proxy .*(met|NOT MET)$/m,
        /^startup to first \/health .*(met|NOT MET)$/m,
        /^ready past load line \+ bench ms\s+-\s+-\s+\d+ \+ \d+\s+-$/m,
        /^ready past the load line, less the benchmark .*(met|NOT MET)$/m,
      ]
    ) assert.match(stdout, row);
    const report = JSON.parse(await Deno.readTextFile(json));
    assert.equal(report.errors, 0);
    assert.deepEqual(
      report.figures.map((f: { name: string }) => f.name),
      ["direct", "minimal proxy", "edgeworker", "UNSECURED"],
    );
    assert.equal(report.goals.length, 9);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
