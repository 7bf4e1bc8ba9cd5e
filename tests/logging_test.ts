/**
 * What a person reads on stderr: a real process sets up logging as `main`
 * does, walks the lifecycle and logs awkward values; the lines must read
 * plainly (no quotes around states and numbers), one line per event, and
 * the JSON format must stay one parseable object per line.
 *
 * @module
 */
import assert from "node:assert/strict";

const lib = (path: string) => new URL(`../lib/${path}`, import.meta.url).href;

/** Runs a script that logs through `setupLogging`; returns its stderr lines. */
async function logLines(format: "text" | "json"): Promise<string[]> {
  const script = `
    import { getLogger } from "@logtape/logtape";
    import { closeLogging, setupLogging } from "${lib("worker/logging.ts")}";
    import { Lifecycle } from "${lib("model/lifecycle.ts")}";
    await setupLogging({ format: "${format}" });
    let t = 1000;
    const lifecycle = new Lifecycle({ startedAt: 1000, now: () => t });
    t += 330;
    lifecycle.to("loading", "model server started");
    t += 2000;
    lifecycle.to("benchmarking", "");
    const log = getLogger(["edgeworker", "test"]);
    log.warn("Bad line {line} from {who} ({n} bytes, ok={ok}) {obj}", {
      line: "first\\nsecond\\u001b[31m",
      who: "vllm",
      n: 42,
      ok: false,
      obj: { a: 1, b: [1, 2, { c: "x".repeat(100) }] },
    });
    log.error("Failed: {error}", { error: new TypeError("no\\nway") });
    log.info("Figures {a} {b} {c} {d} {e}", {
      a: 0.3312345, b: 2472.5805883, c: 7, d: 0.00000123456, e: 12345678901234567890n,
    });
    await closeLogging();
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      script,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  // console.info writes to stdout, warnings and errors to stderr.
  const text = new TextDecoder().decode(out.stdout) +
    new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  return text.split("\n").filter((l) => l !== "");
}

Deno.test("text log lines show states and numbers bare, one line per event", async () => {
  const lines = await logLines("text");
  assert.equal(lines.length, 5, lines.join("\n"));
  assert.ok(
    lines.some((l) =>
      l.endsWith(
        "[INF] edgeworker·test: Figures 0.331 2472.581 7 0.00000123 12345678901234567890",
      )
    ),
    lines.join("\n"),
  );
  assert.match(
    lines[0],
    /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d\d(:\d\d)? \[INF\] edgeworker·lifecycle: State starting -> loading after 0\.33s: model server started$/,
  );
  assert.match(
    lines[1],
    /State loading -> benchmarking after 2\.33s: ""$/,
    "an empty value stays visible",
  );
  const line = (part: string) => lines.find((l) => l.includes(part)) ?? "";
  assert.ok(
    line("[WRN]").endsWith(
      `[WRN] edgeworker·test: Bad line first\\nsecond\\u001b[31m from vllm (42 bytes, ok=false) { a: 1, b: [ 1, 2, { c: "${
        "x".repeat(100)
      }" } ] }`,
    ),
    line("[WRN]"),
  );
  assert.match(
    line("[ERR]"),
    /\[ERR\] edgeworker·test: Failed: TypeError: no\\nway$/,
  );
  for (const line of lines) assert.ok(!line.includes("\u001b"), line);
});

Deno.test("JSON log lines stay one object per line", async () => {
  const lines = await logLines("json");
  assert.equal(lines.length, 5, lines.join("\n"));
  const records = lines.map((l) => JSON.parse(l));
  assert.equal(records[0].level, "INFO");
  assert.equal(records[0].logger, "edgeworker.lifecycle");
  assert.equal(records[0].properties.to, "loading");
  const warning = records.find((r) => r.level === "WARN");
  assert.equal(warning.properties.n, 42);
  assert.equal(warning.properties.line, "first\nsecond\u001b[31m");
  const figures = records.find((r) => r.message.startsWith("Figures"));
  assert.equal(figures.properties.a, 0.3312345, "JSON keeps every digit");
});
