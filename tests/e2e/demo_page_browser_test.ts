/**
 * The local serverless you can watch, in a real browser: `edgeworker demo
 * --workers 2` runs as a subprocess, Debian's chromium (driven by
 * playwright-core) opens the control plane's page, waits until both
 * workers show as ready, then requests go the way a client sends them
 * (`/route/`, then the worker it names) and the page must list them with
 * their outcome, spread over both workers, and its chart must move; then
 * the first worker's own `/dashboard` (with the demo's token) shows it
 * ready with its requests. Screenshots are kept in the test's temp dir. Without chromium this test
 * fails and says how to install it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { chromium, type Page } from "playwright-core";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
/** Debian's chromium; `CHROMIUM_PATH` names another Chromium-based browser. */
const CHROMIUM = Deno.env.get("CHROMIUM_PATH") || "/usr/bin/chromium";
const REQUESTS = 12;

/** Fails with the fix when the browser is not installed. */
async function requireChromium(): Promise<void> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(
      `${CHROMIUM} is missing: this test drives Debian's chromium. Install it with ` +
        "`sudo apt-get install -y chromium` (.ci/run does this), or set " +
        "CHROMIUM_PATH to another Chromium-based browser.",
    );
  }
}

/** Collects a subprocess's output and resolves when a line matches. */
class Output {
  text = "";
  #waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        this.text += chunk;
        for (const w of [...this.#waiters]) {
          const m = this.text.match(w.re);
          if (m) {
            this.#waiters.splice(this.#waiters.indexOf(w), 1);
            w.resolve(m);
          }
        }
      }
    })();
  }

  async match(re: RegExp, ms: number): Promise<RegExpMatchArray> {
    const now = this.text.match(re);
    if (now) return now;
    const found = Promise.withResolvers<RegExpMatchArray>();
    this.#waiters.push({ re, resolve: found.resolve });
    const timer = setTimeout(
      () => found.reject(new Error(`no ${re} in output:\n${this.text}`)),
      ms,
    );
    try {
      return await found.promise;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** One request as a client sends it: a route, then the worker it names. */
/** The text of every cell of the table rows `selector` finds, row by row. */
function cellsOf(page: Page, selector: string): Promise<(string | null)[][]> {
  return page.$$eval(
    selector,
    (trs) =>
      trs.map((tr) =>
        [...tr.querySelectorAll("td")].map((td) => td.textContent)
      ),
  );
}

async function send(cp: string, i: number): Promise<{ url: string }> {
  let auth: Record<string, unknown> = {};
  for (let tries = 0; tries < 50; tries++) {
    const route = await fetch(`${cp}/route/`, {
      method: "POST",
      body: JSON.stringify({
        endpoint: "demo",
        api_key: "demo",
        cost: 100,
        request_idx: auth.request_idx ?? 0,
      }),
    });
    auth = await route.json();
    if (typeof auth.url === "string") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(typeof auth.url, "string", `routed: ${JSON.stringify(auth)}`);
  const res = await fetch(`${auth.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      auth_data: auth,
      payload: {
        model: "demo-model",
        stream: true,
        max_tokens: 60,
        messages: [{ role: "user", content: `Hello ${i}` }],
      },
    }),
  });
  assert.equal(res.status, 200);
  assert.match(await res.text(), /data: \[DONE\]/);
  return { url: auth.url as string };
}

Deno.test("the control plane page shows two demo workers, the requests sent and a moving chart", async () => {
  await requireChromium();
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-browser-" });
  const demo = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "demo",
      "--workers",
      "2",
      "--port",
      "0",
      "--worker-port",
      "0",
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = new Output(demo.stdout);
  const err = new Output(demo.stderr);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox"],
  });
  try {
    const [, cp] = await out.match(
      /live page: +(http:\/\/127\.0\.0\.1:\d+)\//,
      30_000,
    );
    const page = await browser.newPage({
      viewport: { width: 1280, height: 900 },
    });
    await page.goto(`${cp}/`);
    assert.equal(await page.title(), "edgeworker demo: 2 workers");

    // Both workers come up: loading, benchmarking, then ready.
    // Expressions run in the page (this file has no DOM types).
    await page.waitForFunction(
      `document.querySelectorAll('#workers tr[data-state="ready"]').length === 2`,
      undefined,
      { timeout: 90_000, polling: 200 },
    );
    const rows = await cellsOf(page, "#workers tbody tr");
    assert.deepEqual(rows.map((r) => r[0]), ["1", "2"]);
    for (const r of rows) {
      assert.equal(r[1], "ready");
      assert.ok(Number(r[3]) > 0, `max_perf shown: ${r}`);
      assert.match(r[7] ?? "", /^http:\/\/127\.0\.0\.1:\d+$/);
    }

    // Three waves of four at once: the control plane spreads them by load.
    const used = new Set<string>();
    for (let wave = 0; wave < REQUESTS / 4; wave++) {
      const done = await Promise.all(
        [0, 1, 2, 3].map((k) => send(cp, wave * 4 + k)),
      );
      for (const d of done) used.add(d.url);
    }
    assert.equal(used.size, 2, "both workers got requests");

    await page.waitForFunction(
      `document.querySelectorAll('#requests tr[data-outcome="Success"]').length >= ${REQUESTS}`,
      undefined,
      { timeout: 20_000, polling: 200 },
    );
    await page.waitForFunction(
      `Number(document.getElementById("chart").dataset.throughputMax) > 0`,
      undefined,
      { timeout: 10_000, polling: 200 },
    );
    const requests = await cellsOf(page, "#requests tbody tr");
    const succeeded = requests.filter((r) => r[4] === "Success");
    assert.equal(succeeded.length, REQUESTS);
    assert.deepEqual(
      new Set(succeeded.map((r) => r[1])),
      new Set(["1", "2"]),
      "the table says which worker served each",
    );
    for (const r of succeeded) {
      assert.equal(r[3], "100.0", "the cost routed");
      assert.ok(Number(r[7]) > 0, `work seconds shown: ${r}`);
    }
    const throughputLine = await page.getAttribute(
      "#throughput-line",
      "points",
    );
    const ys = (throughputLine ?? "").split(" ").map((p) =>
      Number(p.split(",")[1])
    );
    assert.ok(
      Math.min(...ys) < Math.max(...ys),
      "the throughput line is not flat",
    );
    const facts = await page.textContent("#facts");
    assert.match(facts ?? "", /ready workers: 2/);
    assert.match(facts ?? "", /invalid reports: 0/);
    assert.match(facts ?? "", new RegExp(`routed: ${REQUESTS}`));
    assert.match(await page.textContent("#conn") ?? "", /^live/);
    const reports = await page.$$eval(
      "#reports tbody tr",
      (trs) => trs.map((tr) => [tr.dataset.kind, tr.dataset.valid]),
    );
    assert.ok(reports.length > 0, "the last reports are listed");
    assert.ok(
      reports.every(([, valid]) => valid === "true"),
      `every report the demo's workers sent is valid: ${reports}`,
    );
    assert.ok(reports.some(([kind]) => kind === "delete_requests"));
    assert.ok(
      !(await page.content()).includes("demo-master-token"),
      "the workers' MASTER_TOKEN is not on the page",
    );

    const shot = `${dir}/control-plane.png`;
    await page.screenshot({ path: shot, fullPage: true });
    const png = await Deno.readFile(shot);
    assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    assert.ok(png.length > 10_000, `a real screenshot (${png.length} bytes)`);
    console.log(`screenshot: ${shot}`);

    // The same page on a worker, for itself, behind MASTER_TOKEN.
    const worker = rows[0][7];
    const dash = await browser.newPage();
    await dash.goto(`${worker}/dashboard?token=demo-master-token`);
    await dash.waitForFunction(
      `document.querySelectorAll('#workers tr[data-state="ready"]').length === 1 &&
        document.querySelectorAll('#requests tr[data-outcome="Success"]').length > 0`,
      undefined,
      { timeout: 10_000, polling: 200 },
    );
    const mine = await dash.$$eval(
      "#requests tbody tr",
      (trs) => trs.map((tr) => tr.querySelectorAll("td")[2]?.textContent),
    );
    assert.ok(
      mine.every((route) => route === "/v1/chat/completions"),
      `the worker knows each request's route: ${mine}`,
    );
    await dash.screenshot({ path: `${dir}/worker-dashboard.png` });
    const denied = await browser.newPage();
    const refused = await denied.goto(`${worker}/dashboard`);
    assert.equal(refused?.status(), 401);
  } finally {
    await browser.close();
    demo.kill("SIGINT");
    const status = await demo.status;
    await out.done;
    await err.done;
    assert.equal(status.code, 0, err.text);
    assert.match(out.text, /Stopping the demo/);
  }
});
