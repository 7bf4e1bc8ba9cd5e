/**
 * `deno task chaos`: the long chaos run. Prints the books and exits 1 when
 * an invariant fails.
 *
 * ```sh
 * deno task chaos                                  # 3000 requests, random seed
 * deno task chaos --seed 7 --requests 500          # replay a run
 * deno task chaos --duration 5m --requests 100000  # stop after 5 minutes
 * deno task chaos --only leave_raw,ok              # one ingredient and a control
 * deno task chaos --without model --outages none   # all but the model's faults
 * deno task chaos --slow-autoscaler-ms 11000       # slower than the 10 s per-try timeout
 * deno task chaos --list                           # the ingredients
 * deno task chaos --each --requests 80             # each ingredient alone: a matrix
 * ```
 *
 * `CHAOS_SEED=<n>` (or `FC_SEED`) sets the seed as `--seed` does.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { formatBooks, formatMatrix } from "./books.ts";
import type { ChaosReport } from "./harness.ts";
import { runChaos } from "./harness.ts";
import { INGREDIENTS, selectIngredients } from "./ingredients.ts";
import type { OutageKind } from "./autoscaler.ts";
import { parseSeed, seedFromEnv } from "./rng.ts";

/** Parses `90`, `90s`, `5m`, `1h` into milliseconds (bare numbers: seconds). */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new RangeError(`bad duration "${text}" (e.g. 90s, 5m)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"]!;
  return Number(m[1]) * unit;
}

const list = (s: string | undefined) =>
  (s ?? "").split(",").map((x) => x.trim()).filter((x) => x !== "");

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      seed: { type: "string" },
      requests: { type: "string", default: "3000" },
      duration: { type: "string", default: "10m" },
      concurrency: { type: "string", default: "32" },
      only: { type: "string" },
      without: { type: "string" },
      outages: { type: "string", default: "503,down,slow" },
      "slow-autoscaler-ms": { type: "string", default: "400" },
      "max-body-bytes": { type: "string", default: String(1024 * 1024) },
      "first-byte-timeout": { type: "string", default: "4" },
      "settle-ms": { type: "string", default: "30000" },
      list: { type: "boolean" },
      each: { type: "boolean" },
      quiet: { type: "boolean" },
    },
  });
  if (values.list) {
    for (const i of INGREDIENTS) {
      console.log(
        `${i.name.padEnd(20)} ${i.group.padEnd(7)} w${
          String(i.weight).padEnd(3)
        } ${i.about}`,
      );
    }
    console.log(
      "outages: 503 (answers 503), down (port closed), slow (answers late)",
    );
    return 0;
  }
  const outages = list(values.outages).filter((x) => x !== "none");
  for (const k of outages) {
    if (!["503", "down", "slow"].includes(k)) {
      throw new RangeError(`unknown outage "${k}"`);
    }
  }
  const seed = values.seed !== undefined
    ? parseSeed(values.seed)
    : seedFromEnv();
  const maxBody = Number(values["max-body-bytes"]);
  console.log(`chaos seed ${seed} (replay with --seed ${seed})`);
  // Ctrl-C stops the worker subprocess too.
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const common = {
    signal: stop.signal,
    seed,
    concurrency: Number(values.concurrency),
    slowAutoscalerMs: Number(values["slow-autoscaler-ms"]),
    maxBodyBytes: maxBody > 0 ? maxBody : undefined,
    firstByteTimeoutSeconds: Number(values["first-byte-timeout"]),
    settleMs: Number(values["settle-ms"]),
  };
  if (values.each) {
    // Each ingredient alone (3 to 1 with plain requests), then each outage
    // under plain traffic: one row per run.
    const ok = INGREDIENTS.find((i) => i.name === "ok")!;
    const stream = INGREDIENTS.find((i) => i.name === "stream")!;
    const rows: [string, ChaosReport][] = [];
    const broken: string[] = [];
    const n = Number(values.requests);
    for (
      const ing of selectIngredients(list(values.only), list(values.without))
    ) {
      const mix = ing === ok
        ? [ok]
        : [{ ...ing, weight: 3 }, { ...ok, weight: 1 }];
      const r = await runChaos({
        ...common,
        requests: n,
        ingredients: mix,
        outages: [],
      }).catch((e: unknown) => e instanceof Error ? e : new Error(String(e)));
      if (r instanceof Error) {
        console.error(`[chaos] ${ing.name}: the run failed: ${r.message}`);
        broken.push(ing.name);
        continue;
      }
      console.error(`[chaos] ${ing.name}: ${r.ok ? "ok" : "FAILED"}`);
      rows.push([ing.name, r]);
    }
    for (const kind of outages as OutageKind[]) {
      // Enough plain traffic for several outages.
      const r = await runChaos({
        ...common,
        requests: n * 6,
        durationMs: parseDuration(values.duration),
        ingredients: [ok, stream],
        outages: [kind],
      }).catch((e: unknown) => e instanceof Error ? e : new Error(String(e)));
      if (r instanceof Error) {
        console.error(`[chaos] outage ${kind}: the run failed: ${r.message}`);
        broken.push(`outage ${kind}`);
        continue;
      }
      console.error(`[chaos] outage ${kind}: ${r.ok ? "ok" : "FAILED"}`);
      rows.push([`outage ${kind}`, r]);
    }
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    console.log(formatMatrix(rows));
    if (broken.length > 0) {
      console.log(`runs that could not finish: ${broken.join(", ")}`);
    }
    return rows.every(([, r]) => r.ok) && broken.length === 0 ? 0 : 1;
  }
  const report = await runChaos({
    signal: stop.signal,
    seed,
    requests: Number(values.requests),
    durationMs: parseDuration(values.duration),
    concurrency: Number(values.concurrency),
    ingredients: selectIngredients(list(values.only), list(values.without)),
    outages: outages as OutageKind[],
    slowAutoscalerMs: Number(values["slow-autoscaler-ms"]),
    maxBodyBytes: maxBody > 0 ? maxBody : undefined,
    firstByteTimeoutSeconds: Number(values["first-byte-timeout"]),
    settleMs: Number(values["settle-ms"]),
    ...(values.quiet
      ? {}
      : { log: (l: string) => console.error(`[chaos] ${l}`) }),
  });
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  console.log(formatBooks(report));
  return report.ok ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
