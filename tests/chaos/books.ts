/**
 * The books of a chaos run as text: the outcome table (harness, worker,
 * autoscaler side by side), resources, each invariant with the ingredients
 * it blames, one line per ingredient, and the command that replays the run.
 *
 * @module
 */
import type { ChaosReport, RequestRun } from "./harness.ts";
import { INGREDIENTS } from "./ingredients.ts";

/** Short names of the invariants, for the `--each` matrix. */
export const SHORT_NAMES: readonly [RegExp, string][] = [
  [/^books balance/, "books"],
  [/^worker \/metrics =/, "metrics=cp"],
  [/^nothing in flight/, "in-flight"],
  [/^every request_idx/, "idx-once"],
  [/^reported status/, "status"],
  [/^every answer/, "answers"],
  [/^every model call/, "model-open"],
  [/^no request reached/, "twice"],
  [/^a normal request/, "probe"],
  [/^reported workload sums after/, "sums-after"],
  [/^reported workload sums over/, "sums-run"],
  [/^RSS/, "rss"],
  [/^open descriptors/, "fds"],
  [/^MASTER_TOKEN/, "secret"],
  [/^after SIGTERM/, "flush"],
  [/^every line the worker logs/, "json-logs"],
  [/^worker exits/, "exit"],
];

/** The short name of an invariant. */
export function shortName(name: string): string {
  return SHORT_NAMES.find(([re]) => re.test(name))?.[1] ?? name.slice(0, 10);
}

/**
 * One row per run: which invariants failed (`X`), warned (`w`) or held
 * (`.`), to see which ingredient breaks which invariant.
 */
export function formatMatrix(rows: readonly [string, ChaosReport][]): string {
  const cols = SHORT_NAMES.map(([, n]) => n);
  const width = Math.max(...rows.map(([n]) => n.length), 10);
  const out = [
    `${"".padEnd(width)}  ${
      cols.map((_, i) => String(i + 1).padStart(2)).join(" ")
    }`,
  ];
  for (const [name, r] of rows) {
    const cells = cols.map((c) => {
      const i = r.invariants.find((x) => shortName(x.name) === c);
      return (i === undefined ? "-" : i.ok ? "." : i.soft ? "w" : "X").padStart(
        2,
      );
    });
    const failed = r.invariants.filter((x) => !x.ok && !x.soft).map((x) =>
      shortName(x.name)
    );
    out.push(
      `${name.padEnd(width)}  ${cells.join(" ")}   ${failed.join(", ")}`,
    );
  }
  out.push("", "columns: " + cols.map((c, i) => `${i + 1} ${c}`).join(", "));
  for (const [name, r] of rows) {
    for (const i of r.invariants.filter((x) => !x.ok && !x.soft)) {
      out.push(`  ${name} / ${shortName(i.name)}: ${i.detail.slice(0, 240)}`);
    }
  }
  out.push(
    "X failed, w warning, . held, - not checked (sums-run: some workload not a plain number)",
  );
  return out.join("\n");
}

const pad = (s: string | number, n: number) => String(s).padEnd(n);
const lpad = (s: string | number, n: number) => String(s).padStart(n);

function counts(values: readonly string[]): string {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return [...m].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}×${n}`).join(
    " ",
  );
}

/** The command line that replays `r` (same seed, size and mix). */
export function replayCommand(r: ChaosReport): string {
  const o = r.options;
  const all = INGREDIENTS.map((i) => i.name);
  const used = o.ingredients.map((i) => i.name);
  const args: (string | number)[] = [
    "deno task chaos --seed",
    r.seed,
    "--requests",
    o.requests,
    "--concurrency",
    o.concurrency,
  ];
  if (o.durationMs !== undefined) {
    args.push("--duration", `${o.durationMs / 1000}s`);
  }
  if (used.length !== all.length) args.push("--only", used.join(","));
  if (o.outages.length !== 3) {
    args.push("--outages", o.outages.join(",") || "none");
  }
  if (o.slowAutoscalerMs !== 400) {
    args.push("--slow-autoscaler-ms", o.slowAutoscalerMs);
  }
  if (o.maxBodyBytes !== 1024 * 1024) {
    args.push("--max-body-bytes", o.maxBodyBytes ?? 0);
  }
  if (o.firstByteTimeoutSeconds !== 4) {
    args.push("--first-byte-timeout", o.firstByteTimeoutSeconds);
  }
  return args.join(" ");
}

/** The books as printable text. */
export function formatBooks(r: ChaosReport): string {
  const out: string[] = [];
  const runs = r.runs;
  // Left before being admitted: not in the ledger either.
  const leftEarly = (x: RequestRun) =>
    Array.isArray(x.verdict.record) &&
    (x.verdict.record as string[]).includes("absent") &&
    x.reported.length === 0;
  const ledgerBound = runs.filter((x) =>
    x.verdict.record !== "none" && !leftEarly(x)
  );
  const never = runs.length - ledgerBound.length;
  // Plain helper requests some ingredients send (always Success).
  const helpers = runs.filter((x) => x.verdict.helper).length;
  // A request's outcome is certain when one status is allowed ("absent"
  // aside, when it was reported after all).
  const allowed = (x: RequestRun) =>
    Array.isArray(x.verdict.record)
      ? (x.verdict.record as string[]).filter((s) => s !== "absent")
      : [];
  const harness = (s: string) =>
    runs.filter((x) => {
      const a = allowed(x);
      return a.length === 1 && a[0] === s && !leftEarly(x);
    }).length;
  const w = r.worker.outcomes;
  out.push(
    `chaos seed ${r.seed}: ${runs.length} requests (${r.options.requests} chaos + warm-up + probes), ` +
      `concurrency ${r.options.concurrency}, sent in ${
        (r.sendMs / 1000).toFixed(1)
      } s, ` +
      `whole run ${(r.totalMs / 1000).toFixed(1)} s`,
  );
  out.push(
    `autoscaler outages: ${
      Object.entries(r.outages).map(([k, n]) => `${k}×${n}`).join(" ") || "none"
    }` +
      (r.options.outages.includes("slow")
        ? ` (slow = ${r.options.slowAutoscalerMs} ms)`
        : ""),
  );
  out.push("");
  out.push(
    "BOOKS                          clients   worker /metrics   autoscaler",
  );
  const row = (
    name: string,
    h: string | number,
    wk: string | number,
    a: string | number,
  ) =>
    out.push(
      `  ${pad(name, 28)} ${lpad(h, 7)}   ${lpad(wk, 15)}   ${lpad(a, 10)}`,
    );
  row("sent", runs.length, "", "");
  row("never admitted (422/413/left)", never, "", "");
  row(
    "  of them: left before admission",
    runs.filter(leftEarly).length,
    "",
    "",
  );
  row(
    "received (in the ledger)",
    ledgerBound.length + helpers,
    r.received + w.rejected,
    r.reported.Success + r.reported.Error + r.reported.Cancelled +
      r.reported.Rejected,
  );
  const certain = ["Success", "Error", "Cancelled", "Rejected"].map(harness);
  row("  success", certain[0] + helpers, w.success, r.reported.Success);
  row("  error", certain[1], w.error, r.reported.Error);
  row("  cancelled", certain[2], w.cancelled, r.reported.Cancelled);
  row("  rejected", certain[3], w.rejected, r.reported.Rejected);
  row(
    "  either (races, wrong answers)",
    ledgerBound.length - certain.reduce((a, b) => a + b, 0),
    "",
    "",
  );
  row(
    "in flight / queued",
    "-",
    `${r.worker.inFlight} / ${r.worker.queued}`,
    "",
  );
  out.push(
    `  (clients: the outcome each client's experience calls for; worker received = num_requests_recieved + rejected)`,
  );
  if (Object.keys(r.worker.rejectedBy).length > 0) {
    out.push(
      `  rejected by reason: ${
        Object.entries(r.worker.rejectedBy).map(([k, n]) => `${k} ${n}`).join(
          ", ",
        )
      }`,
    );
  }
  const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
  out.push(
    `RESOURCES  rss ${mb(r.rss.baseline)} -> ${
      mb(r.rss.after)
    } MB, fds ${r.fds.baseline} -> ${r.fds.after}`,
  );
  out.push("");
  out.push("INVARIANTS");
  for (const i of r.invariants) {
    out.push(`  ${i.ok ? "PASS" : i.soft ? "WARN" : "FAIL"}  ${i.name}`);
    out.push(`        ${i.detail}`);
    if (!i.ok && i.blame && Object.keys(i.blame).length > 0) {
      out.push(
        `        blame: ${
          Object.entries(i.blame).sort((a, b) => b[1] - a[1]).map(([k, n]) =>
            `${k} ${n}`
          ).join(", ")
        }`,
      );
    }
  }
  out.push("");
  out.push(
    `PER INGREDIENT           sent  client saw / reported as / problems`,
  );
  const by = new Map<string, RequestRun[]>();
  for (const x of runs) {
    if (!by.has(x.ingredient)) by.set(x.ingredient, []);
    by.get(x.ingredient)!.push(x);
  }
  for (const [name, list] of by) {
    const problems = list.filter((x) => x.verdict.problems.length > 0);
    const wrong = list.filter((x) =>
      Array.isArray(x.verdict.record)
        ? x.reported.length > 1 ||
          (x.reported.length === 0
            ? !(x.verdict.record as string[]).includes("absent")
            : !(x.verdict.record as string[]).includes(x.reported[0].status))
        : x.verdict.record === "none"
        ? x.reported.length > 0
        : x.reported.length > 1
    );
    const flag = problems.length + wrong.length > 0 ? "!" : " ";
    out.push(
      `${flag} ${pad(name, 22)} ${lpad(list.length, 5)}  saw: ${
        counts(list.map((x) => x.verdict.seen))
      }`,
    );
    out.push(
      `  ${pad("", 28)}  reported: ${
        counts(
          list.map((x) => x.reported.map((d) => d.status).join("+") || "-"),
        )
      }`,
    );
    if (wrong.length > 0) {
      out.push(
        `  ${pad("", 28)}  wrong books: ${wrong.length} (e.g. ${
          wrong.slice(0, 5).map((x) => x.idx).join(", ")
        })`,
      );
    }
    if (problems.length > 0) {
      out.push(
        `  ${pad("", 28)}  problems: ${problems.length}: ${
          problems[0].verdict.problems[0]
        }`,
      );
    }
  }
  out.push("");
  out.push(
    `${r.ok ? "ALL INVARIANTS HOLD" : "SOME INVARIANTS FAILED"}  replay: ${
      replayCommand(r)
    }`,
  );
  if (!r.ok && r.workerOutput) {
    out.push("", "worker output (last lines):", r.workerOutput);
  }
  return out.join("\n");
}
