/**
 * Property tests of model-log reading: `LineSplitter` gives the same lines
 * however the text is cut into pieces, never a line over its limit; and
 * `LogMonitor` on a real file, written in arbitrary byte pieces (cutting
 * UTF-8 characters and CRLFs apart), reports exactly the lines that match,
 * once each, in file order. Seeds: see `tests/chaos/fc_params.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { LineSplitter } from "../lib/model/line_splitter.ts";
import {
  type LogEvent,
  LogMonitor,
  stripAnsi,
} from "../lib/model/log_monitor.ts";
import { fcParams } from "./chaos/fc_params.ts";
import { cutAt } from "./helpers/cut.ts";

/** Text with line breaks, CRs and characters of every UTF-8 length. */
const logText = fc.array(
  fc.oneof(
    { weight: 6, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
    { weight: 2, arbitrary: fc.constantFrom("\n", "\r\n", "\r", "\n\n") },
    { weight: 1, arbitrary: fc.constantFrom("é", "€", "😀", "\u0000") },
  ),
).map((parts) => parts.join(""));

Deno.test("LineSplitter gives the same lines however the text is cut", () => {
  fc.assert(
    fc.property(
      logText,
      fc.array(fc.nat(), { maxLength: 12 }),
      fc.oneof(fc.constant(65536), fc.integer({ min: 1, max: 24 })),
      (text, points, max) => {
        const whole = new LineSplitter({ maxLineLength: max });
        const expected = [...whole.push(text), whole.flush()];
        const pieces = new LineSplitter({ maxLineLength: max });
        const got: (string | undefined)[] = cutAt(text, points).flatMap((p) =>
          pieces.push(p)
        );
        got.push(pieces.flush());
        assert.deepEqual(got, expected);
        for (const line of got) {
          if (line === undefined) continue;
          assert.ok(!line.includes("\n"), "a line with a line break");
          assert.ok(line.length <= max, `a line of ${line.length} > ${max}`);
        }
        if (max === 65536) {
          // Without cuts: exactly the lines of split("\n"), one CR dropped.
          const lines = text.split("\n");
          const tail = lines.pop()!;
          const want = [
            ...lines.map((l) => l.endsWith("\r") ? l.slice(0, -1) : l),
            tail === ""
              ? undefined
              : tail.endsWith("\r")
              ? tail.slice(0, -1)
              : tail,
          ];
          assert.deepEqual(got, want);
        }
      },
    ),
    fcParams(500),
  );
});

const ACTIONS = {
  onLoad: ["READY-MARK"],
  onError: ["FATAL-MARK", /cuda out of memory/i],
  onInfo: ["SENTINEL-"],
};

/** The kind of the first rule a line matches, as LogMonitor checks them. */
function expectedKind(line: string): LogEvent["kind"] | undefined {
  if (line.includes("READY-MARK")) return "load";
  if (line.includes("FATAL-MARK") || /cuda out of memory/i.test(line)) {
    return "error";
  }
  if (line.includes("SENTINEL-")) return "info";
  return undefined;
}

/** A log line: any text, maybe with a mark in it. */
const logLine = fc.tuple(
  fc.string({ unit: "binary", maxLength: 60 }).map((s) =>
    s.replace(/[\n]/g, " ")
  ),
  fc.constantFrom(
    "",
    "",
    "READY-MARK",
    "FATAL-MARK",
    "CUDA Out Of Memory",
    "ready-mark",
  ),
  fc.string({ unit: "binary", maxLength: 20 }).map((s) =>
    s.replace(/[\n]/g, " ")
  ),
  fc.constantFrom("\n", "\r\n"),
).map(([a, mark, b, end]) => ({ text: a + mark + b, end }));

Deno.test("LogMonitor reports exactly the matching lines of a file written in any pieces", async () => {
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(logLine, { maxLength: 30 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      async (lines, points) => {
        const dir = await Deno.makeTempDir({ prefix: "property-log-" });
        const path = `${dir}/model.log`;
        await Deno.writeTextFile(path, "");
        const events: LogEvent[] = [];
        const monitor = new LogMonitor({
          path,
          pollIntervalMs: 20,
          watch: false,
          actions: ACTIONS,
          onEvent: (e) => events.push(e),
        });
        const sentinel = `SENTINEL-${run++}`;
        try {
          await monitor.start();
          const bytes = new TextEncoder().encode(
            lines.map((l) => l.text + l.end).join("") + sentinel + "\n",
          );
          // Byte pieces: UTF-8 characters and CRLFs may be cut in two.
          const at = [...new Set(points.map((p) => p % (bytes.length + 1)))]
            .sort((a, b) => a - b);
          let last = 0;
          for (const p of [...at, bytes.length]) {
            await Deno.writeFile(path, bytes.subarray(last, p), {
              append: true,
            });
            last = p;
            if (p % 3 === 0) await new Promise((r) => setTimeout(r, 25));
          }
          const deadline = Date.now() + 5000;
          while (!events.some((e) => e.line === sentinel)) {
            assert.ok(
              Date.now() < deadline,
              `sentinel not seen; events ${JSON.stringify(events)}`,
            );
            await new Promise((r) => setTimeout(r, 10));
          }
        } finally {
          await monitor.close();
          await Deno.remove(dir, { recursive: true });
        }
        // A CR just before the LF is the line end's, not the line's.
        const text = (l: { text: string; end: string }) =>
          l.end === "\n" && l.text.endsWith("\r")
            ? l.text.slice(0, -1)
            : l.text;
        // What a terminal shows: a lone CR ends a line too, ANSI escapes
        // are not text, empty lines are nothing.
        const shown = (line: string) =>
          line.split("\r").map(stripAnsi).filter((l) => l !== "");
        const want = [...lines.map(text), sentinel].flatMap(shown).flatMap(
          (line) => {
            const kind = expectedKind(line);
            return kind ? [{ kind, line }] : [];
          },
        );
        assert.deepEqual(
          events.map(({ kind, line }) => ({ kind, line })),
          want,
        );
      },
    ),
    fcParams(25),
  );
});
