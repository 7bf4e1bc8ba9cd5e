/**
 * The live page, one HTML document with its style and script inline (no
 * build step, nothing fetched from elsewhere): it polls a JSON
 * `LiveView` (`lib/metrics/live_view.ts`) once a second and draws the workers table, an SVG
 * chart of load and throughput, and the last requests. The local control
 * plane serves it at `/` for all its workers, a worker at `/dashboard` for
 * itself. A `?token=` in the page's address is sent on as
 * `Authorization: Bearer` when it polls.
 *
 * @module
 */
export type { LiveView } from "../metrics/live_view.ts";

/** Options of {@linkcode livePage}. */
export interface LivePageOptions {
  /** Document title until the first poll answers. */
  title: string;
  /** Address (relative to the page) of the JSON view. */
  dataUrl: string;
  /** Poll interval. @default {1000} */
  pollMs?: number;
}

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The page's HTML. */
export function livePage(options: LivePageOptions): string {
  const config = JSON.stringify({
    dataUrl: options.dataUrl,
    pollMs: options.pollMs ?? 1000,
  }).replace(/</g, "\\u003c");
  const title = escapeHtml(options.title);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1 id="title">${title}</h1><span id="conn" class="conn">connecting…</span></header>
<p id="facts"></p>
<section>
<h2>Workers</h2>
<table id="workers"><thead><tr><th>id</th><th>state</th><th>load</th><th>max_perf</th><th>queue</th><th>wait (s)</th><th>last update</th><th>url</th><th>error</th></tr></thead><tbody></tbody></table>
</section>
<section>
<h2>Load and throughput <small>(last 2 minutes, workload units; throughput per second)</small></h2>
<svg id="chart" viewBox="0 0 800 220" role="img" aria-label="load and throughput over time"></svg>
<div class="legend"><span class="load">— load (in flight)</span><span class="tput">— throughput (served / s)</span></div>
</section>
<section>
<h2>Last requests</h2>
<table id="requests"><thead><tr><th>request_idx</th><th>worker</th><th>route</th><th>workload</th><th>outcome</th><th>at</th><th>queue (s)</th><th>work (s)</th></tr></thead><tbody></tbody></table>
</section>
<section id="reports-section" hidden>
<h2>Last reports <small>(newest first; a bad field is named)</small></h2>
<table id="reports"><thead><tr><th>at</th><th>kind</th><th>problems</th><th>body</th></tr></thead><tbody></tbody></table>
</section>
<script>const CONFIG = ${config};
${SCRIPT}</script>
</body>
</html>
`;
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d2430;background:#fafbfc}
header{display:flex;align-items:baseline;gap:1rem}
h1{font-size:1.4rem;margin:0}h2{font-size:1.05rem;margin:1.2rem 0 .4rem}
small{font-weight:normal;color:#667}
.conn{font-size:.85rem;color:#667}.conn.down{color:#b00020}
#facts span{margin-right:1.2rem;color:#445}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.25rem .6rem;border-bottom:1px solid #e3e6ea;white-space:nowrap}
td.err{white-space:normal;color:#b00020}
td.body{white-space:normal;font:12px ui-monospace,monospace;color:#445;word-break:break-all}
th{font-weight:600;color:#445;background:#f0f2f5}
.state{padding:.05rem .45rem;border-radius:.6rem;font-size:.85rem}
.state-ready{background:#d7f5dd;color:#135c24}.state-error{background:#fbd9dc;color:#8a1020}
.state-stale{background:#e6e6e6;color:#555}.state-loading,.state-starting,.state-benchmarking{background:#fdf0c8;color:#6b5200}
.state-draining{background:#e0e4ff;color:#283593}
.o-Success{color:#135c24}.o-Error,.o-Rejected{color:#b00020}.o-Cancelled{color:#6b5200}.o-routed,.o-working{color:#283593}
svg{width:100%;max-width:1100px;height:auto;background:#fff;border:1px solid #e3e6ea}
.legend span{margin-right:1.2rem;font-size:.85rem}.legend .load{color:#1f6feb}.legend .tput{color:#1a7f37}
`;

// Plain browser JavaScript, kept in a string so the binary serves it as is.
const SCRIPT = String.raw`
const token = new URLSearchParams(location.search).get("token");
const headers = token ? { authorization: "Bearer " + token } : {};
const $ = (id) => document.getElementById(id);
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}
const num = (x, d = 1) => x === null || x === undefined ? "–" : Number(x).toFixed(d);
const ago = (now, t) => ((now - t) / 1000).toFixed(1) + " s ago";
const clock = (t) => new Date(t).toLocaleTimeString();
function renderWorkers(view) {
  const body = $("workers").tBodies[0];
  body.replaceChildren();
  for (const w of view.workers) {
    const tr = document.createElement("tr");
    tr.dataset.workerId = String(w.id);
    tr.dataset.state = w.state;
    cell(tr, String(w.id));
    const st = cell(tr, "");
    const badge = document.createElement("span");
    badge.className = "state state-" + w.state;
    badge.textContent = w.state;
    st.appendChild(badge);
    cell(tr, num(w.load));
    cell(tr, num(w.maxPerf));
    cell(tr, String(w.queue));
    cell(tr, num(w.waitSeconds, 2));
    cell(tr, ago(view.now, w.updatedAt));
    cell(tr, w.url);
    cell(tr, w.errorMsg, "err");
    body.appendChild(tr);
  }
}
function renderRequests(view) {
  const body = $("requests").tBodies[0];
  body.replaceChildren();
  for (const r of view.requests) {
    const tr = document.createElement("tr");
    tr.dataset.outcome = r.outcome;
    tr.dataset.requestIdx = r.requestIdx;
    cell(tr, r.requestIdx);
    cell(tr, String(r.worker));
    cell(tr, r.route || "–");
    cell(tr, num(r.workload));
    cell(tr, r.outcome, "o-" + r.outcome);
    cell(tr, clock(r.at));
    cell(tr, num(r.queueSeconds, 3));
    cell(tr, num(r.workSeconds, 3));
    body.appendChild(tr);
  }
}
function renderChart(view) {
  const svg = $("chart");
  const W = 800, H = 220, pad = 24;
  const pts = view.series;
  const top = Math.max(1, ...pts.map((p) => Math.max(p.load, p.throughput)));
  const x = (i) => pad + (i * (W - 2 * pad)) / Math.max(1, pts.length - 1);
  const y = (v) => H - pad - (v / top) * (H - 2 * pad);
  const line = (key) => pts.map((p, i) => x(i).toFixed(1) + "," + y(p[key]).toFixed(1)).join(" ");
  const ns = "http://www.w3.org/2000/svg";
  const el = (name, attrs, text) => {
    const e = document.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  };
  svg.replaceChildren(
    el("line", { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, stroke: "#ccd" }),
    el("line", { x1: pad, y1: pad, x2: W - pad, y2: pad, stroke: "#eef", "stroke-dasharray": "4 4" }),
    el("text", { x: pad + 4, y: pad - 6, "font-size": 12, fill: "#667" }, top.toFixed(1)),
    el("text", { x: pad + 4, y: H - 6, "font-size": 12, fill: "#667" }, pts.length + " s ago"),
    el("text", { x: W - pad - 30, y: H - 6, "font-size": 12, fill: "#667" }, "now"),
    el("polyline", { id: "load-line", points: line("load"), fill: "none", stroke: "#1f6feb", "stroke-width": 2 }),
    el("polyline", { id: "throughput-line", points: line("throughput"), fill: "none", stroke: "#1a7f37", "stroke-width": 2 }),
  );
  const last = pts[pts.length - 1] || { load: 0, throughput: 0 };
  svg.dataset.points = String(pts.length);
  svg.dataset.loadMax = String(Math.max(0, ...pts.map((p) => p.load)));
  svg.dataset.throughputMax = String(Math.max(0, ...pts.map((p) => p.throughput)));
  svg.dataset.throughputLast = String(last.throughput);
}
function renderReports(view) {
  const section = $("reports-section");
  section.hidden = !view.reports;
  if (!view.reports) return;
  const body = $("reports").tBodies[0];
  body.replaceChildren();
  for (const r of view.reports) {
    const tr = document.createElement("tr");
    tr.dataset.kind = r.kind;
    tr.dataset.valid = String(r.problems.length === 0);
    cell(tr, clock(r.at));
    cell(tr, r.kind);
    cell(tr, r.problems.join("; ") || "ok", r.problems.length ? "err" : "");
    cell(tr, r.body, "body");
    body.appendChild(tr);
  }
}
function renderFacts(view) {
  const p = $("facts");
  p.replaceChildren();
  for (const [k, v] of Object.entries(view.facts)) {
    const s = document.createElement("span");
    s.textContent = k + ": " + v;
    p.appendChild(s);
  }
}
let polls = 0;
async function poll() {
  try {
    const res = await fetch(CONFIG.dataUrl, { headers, cache: "no-store" });
    if (!res.ok) throw new Error("HTTP " + res.status);
    const view = await res.json();
    document.title = view.title;
    $("title").textContent = view.title;
    renderFacts(view);
    renderWorkers(view);
    renderChart(view);
    renderRequests(view);
    renderReports(view);
    polls++;
    $("conn").textContent = "live · updated " + clock(view.now);
    $("conn").className = "conn";
    document.body.dataset.polls = String(polls);
  } catch (e) {
    $("conn").textContent = "disconnected (" + e.message + "), retrying";
    $("conn").className = "conn down";
  }
  setTimeout(poll, CONFIG.pollMs);
}
poll();
`;
