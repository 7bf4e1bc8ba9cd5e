/**
 * What the bench prints: one table of figures per process, then each of the
 * issue's targets as a ratio against the minimal proxy (or direct, or an
 * absolute bound), marked met / not met.
 *
 * @module
 */

/** Figures of one process, medians over the interleaved rounds. */
export interface TargetFigures {
  name: string;
  /** req/s by concurrency. */
  rps: Record<string, number>;
  /** c=1 latency. */
  p50Ms: number;
  p99Ms: number;
  /** CPU microseconds per request of this process, by concurrency. */
  cpuUsPerReq: Record<string, number>;
  /** SSE by stream count. */
  sse: Record<
    string,
    { ttfbP50: number; ttfbP99: number; totalP50: number; totalP99: number }
  >;
  rssIdleMb: number;
  rssAfterLoadMb: number;
  /** VmRSS sampled at its highest during the slow streams. */
  rssSlowStreamsMb: number;
  /** VmHWM after the slow streams: the process's peak. */
  peakMb: number;
  startupMs: number;
  /**
   * edgeworker only: from the model's load line to ready, less the startup
   * benchmark's own time (`ready_time.ts`), and that benchmark's time.
   */
  ready?: { pastSignalMs: number; benchmarkMs: number };
  /** non-2xx answers + transport errors + incomplete streams. */
  errors: number;
}

/** One of the targets, evaluated. */
export interface Goal {
  what: string;
  figure: string;
  ratio: number | null;
  bound: string;
  met: boolean;
}

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n) ? n.toFixed(digits) : "-";

/** The figures table, one column per process. */
export function table(rows: TargetFigures[], slowStreams: number): string {
  const lines: [string, (t: TargetFigures) => string][] = [];
  const levels = Object.keys(rows[0].rps);
  for (const c of levels) {
    lines.push([`req/s, c=${c}`, (t) => fmt(t.rps[c])]);
  }
  lines.push(["latency p50 ms, c=1", (t) => fmt(t.p50Ms, 2)]);
  lines.push(["latency p99 ms, c=1", (t) => fmt(t.p99Ms, 2)]);
  for (const c of levels) {
    lines.push([`CPU µs/request, c=${c}`, (t) => fmt(t.cpuUsPerReq[c])]);
  }
  for (const s of Object.keys(rows[0].sse)) {
    lines.push([
      `SSE ${s} first byte p50/p99 ms`,
      (t) => `${fmt(t.sse[s].ttfbP50, 1)} / ${fmt(t.sse[s].ttfbP99, 1)}`,
    ]);
    lines.push([
      `SSE ${s} total p50/p99 ms`,
      (t) => `${fmt(t.sse[s].totalP50)} / ${fmt(t.sse[s].totalP99)}`,
    ]);
  }
  lines.push(["RSS idle MB", (t) => fmt(t.rssIdleMb, 1)]);
  lines.push(["RSS after load MB", (t) => fmt(t.rssAfterLoadMb, 1)]);
  lines.push([
    `RSS ${slowStreams} slow streams MB`,
    (t) => fmt(t.rssSlowStreamsMb, 1),
  ]);
  lines.push(["peak RSS (VmHWM) MB", (t) => fmt(t.peakMb, 1)]);
  lines.push(["startup to /health ms", (t) => fmt(t.startupMs)]);
  lines.push([
    "ready past load line + bench ms",
    (t) =>
      t.ready
        ? `${fmt(t.ready.pastSignalMs)} + ${fmt(t.ready.benchmarkMs)}`
        : "-",
  ]);
  lines.push(["errors", (t) => String(t.errors)]);
  const width = Math.max(...lines.map(([l]) => l.length)) + 2;
  const col = Math.max(14, ...rows.map((r) => r.name.length + 2));
  const head = "".padEnd(width) +
    rows.map((r) => r.name.padStart(col)).join("");
  const body = lines.map(([label, f]) =>
    label.padEnd(width) + rows.map((r) => f(r).padStart(col)).join("")
  );
  return [head, ...body].join("\n");
}

/** The targets for `worker` (edgeworker with signatures checked). */
export function goals(
  direct: TargetFigures,
  minimal: TargetFigures,
  worker: TargetFigures,
  c: string,
  streams: string,
  slowStreams: number,
): Goal[] {
  const ratio = (
    what: string,
    mine: number,
    floor: number,
    bound: number,
    higherIsBetter: boolean,
    digits = 0,
  ): Goal => {
    const r = mine / floor;
    return {
      what,
      figure: `${fmt(mine, digits)} vs ${fmt(floor, digits)}`,
      ratio: r,
      bound: `${higherIsBetter ? "≥" : "≤"} ${bound}×`,
      met: higherIsBetter ? r >= bound : r <= bound,
    };
  };
  const absolute = (what: string, mine: number, max: number, unit: string) => ({
    what,
    figure: `${fmt(mine, 1)} ${unit}`,
    ratio: null,
    bound: `≤ ${max} ${unit}`,
    met: mine <= max,
  });
  return [
    ratio(
      `c=${c} signed throughput / minimal proxy`,
      worker.rps[c],
      minimal.rps[c],
      0.9,
      true,
    ),
    ratio(
      `CPU per request (c=${c}) / minimal proxy`,
      worker.cpuUsPerReq[c],
      minimal.cpuUsPerReq[c],
      1.1,
      false,
    ),
    ratio(
      "c=1 p50 latency / minimal proxy",
      worker.p50Ms,
      minimal.p50Ms,
      1.2,
      false,
      2,
    ),
    ratio(
      `SSE ${streams} total p50 / direct`,
      worker.sse[streams].totalP50,
      direct.sse[streams].totalP50,
      1.1,
      false,
    ),
    ratio(
      `SSE ${streams} first byte p50 / minimal proxy`,
      worker.sse[streams].ttfbP50,
      minimal.sse[streams].ttfbP50,
      1.2,
      false,
      1,
    ),
    absolute("idle RSS", worker.rssIdleMb, 50, "MB"),
    absolute(`peak RSS, ${slowStreams} slow streams`, worker.peakMb, 150, "MB"),
    absolute("startup to first /health", worker.startupMs, 300, "ms"),
    ...(worker.ready
      ? [absolute(
        "ready past the load line, less the benchmark",
        worker.ready.pastSignalMs,
        1000,
        "ms",
      )]
      : []),
  ];
}

/** The targets as text lines. */
export function goalTable(list: Goal[]): string {
  const w = Math.max(...list.map((g) => g.what.length)) + 2;
  const f = Math.max(...list.map((g) => g.figure.length)) + 2;
  return list.map((g) =>
    g.what.padEnd(w) + g.figure.padEnd(f) +
    (g.ratio === null ? "" : `${g.ratio.toFixed(2)}×`).padStart(7) +
    `  ${g.bound.padEnd(10)} ${g.met ? "met" : "NOT MET"}`
  ).join("\n");
}
