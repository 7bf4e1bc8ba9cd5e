/**
 * `maxConcurrency: "auto"` on a real worker in front of a scripted model
 * server with a concurrency knee: the slot count `/metrics` shows settles
 * near the knee, follows it when it moves, and the model server never sees
 * more than `max` at once. Also the engine's own queue (a vLLM `/metrics`)
 * cutting the count, and the config errors.
 */
import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { sleep } from "../dev/_async.ts";
import { envConcurrency, EnvError, readEnv } from "../lib/config/env.ts";
import { ConfigError, parseWorkerConfig } from "../lib/config/file.ts";
import { post, waitFor } from "./helpers/http.ts";
import { startUpstream } from "./helpers/upstream.ts";
import { envelope, startWorker } from "./helpers/worker.ts";

const ROUTE = "/knee";
const STREAM_ROUTE = "/knee-stream";
const BASE_MS = 30;

/** The scripted engine: full speed up to `knee` at once, then slower in proportion. */
function kneeServer() {
  const engine = { knee: 6, active: 0, maxActive: 0, waiting: 0 };
  const up = startUpstream({
    script: async ({ path, signal }) => {
      if (path === "/metrics") {
        return new Response(
          `vllm:num_requests_running{model_name="m"} ${engine.active}\n` +
            `vllm:num_requests_waiting{model_name="m"} ${engine.waiting}\n`,
        );
      }
      if (path === STREAM_ROUTE) {
        // Headers at once, the first token after the engine's delay: only
        // the first chunk tells the engine's speed.
        engine.active++;
        engine.maxActive = Math.max(engine.maxActive, engine.active);
        const ms = BASE_MS * Math.max(1, engine.active / engine.knee);
        const enc = new TextEncoder();
        return new Response(
          new ReadableStream<Uint8Array>({
            async start(c) {
              await sleep(ms, signal);
              engine.active--;
              c.enqueue(enc.encode('data: {"token":"hi"}\n\n'));
              c.enqueue(enc.encode("data: [DONE]\n\n"));
              c.close();
            },
          }),
          { headers: { "content-type": "text/event-stream" } },
        );
      }
      if (path !== ROUTE) return undefined;
      engine.active++;
      engine.maxActive = Math.max(engine.maxActive, engine.active);
      const ms = BASE_MS * Math.max(1, engine.active / engine.knee);
      await sleep(ms, signal);
      engine.active--;
      return Response.json({ ok: true });
    },
  });
  return { up, engine };
}

/** The route's slot count as `/metrics` shows it (the text parses). */
async function slotsOf(url: string, route = ROUTE): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  parsePrometheusTextFormat(text);
  const line = text.split("\n").find((l) =>
    l.startsWith(`edgeworker_concurrency_limit{route="${route}"} `)
  );
  assert.ok(line, "no edgeworker_concurrency_limit line");
  return Number(line.split(" ")[1]);
}

/** `n` requests from `clients` closed-loop clients; the limit sampled meanwhile. */
async function drive(
  url: string,
  n: number,
  clients: number,
  route = ROUTE,
): Promise<number[]> {
  let sent = 0;
  let running = true;
  const seen: number[] = [];
  const sampler = (async () => {
    while (running) {
      seen.push(await slotsOf(url, route));
      await sleep(25);
    }
  })();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (sent < n) {
        sent++;
        const res = await post(url, route, envelope({}));
        assert.equal(res.status, 200, await res.text());
      }
    }),
  );
  running = false;
  await sampler;
  return seen;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

Deno.test("the adaptive slot count settles near the knee, follows it, never above max", async () => {
  const { up, engine } = kneeServer();
  const max = 16;
  const w = await startWorker({
    modelServerUrl: up.url,
    handlers: [{
      route: ROUTE,
      allowParallelRequests: true,
      maxQueueTime: null,
      maxConcurrency: "auto",
      autoConcurrency: { min: 1, max },
    }],
  });
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    assert.equal(await slotsOf(w.url), 8); // min(max, 8) at start
    // Enough answers for the stated convergence (300) and a second half.
    for (const [knee, answers] of [[6, 700], [3, 500]]) {
      engine.knee = knee;
      const seen = await drive(w.url, answers, 32);
      const settled = median(seen.slice(Math.floor(seen.length / 2)));
      // Settles where first bytes are 1.5× the unloaded ones: 1.5 × knee.
      assert.ok(
        settled >= knee && settled <= 2 * knee,
        `knee ${knee}: settled at ${settled} (${seen.join(" ")})`,
      );
      assert.ok(seen.every((s) => s >= 1 && s <= max), seen.join(" "));
    }
    assert.ok(engine.maxActive <= max, `engine saw ${engine.maxActive}`);
  } finally {
    await w.shutdown();
    await up.close();
    await Deno.remove(w.dir, { recursive: true });
  }
});

Deno.test("a streamed answer's first chunk, not its headers, steers the count", async () => {
  const { up, engine } = kneeServer();
  engine.knee = 4;
  const max = 16;
  const w = await startWorker({
    modelServerUrl: up.url,
    handlers: [{
      route: STREAM_ROUTE,
      allowParallelRequests: true,
      maxQueueTime: null,
      maxConcurrency: "auto",
      autoConcurrency: { min: 1, max },
    }],
  });
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const seen = await drive(w.url, 600, 32, STREAM_ROUTE);
    const settled = median(seen.slice(Math.floor(seen.length / 2)));
    // Headers come at once: had they been the signal, the count would
    // have climbed to max.
    assert.ok(
      settled >= 4 && settled <= 8,
      `settled at ${settled} (${seen.join(" ")})`,
    );
    assert.ok(engine.maxActive <= max, `engine saw ${engine.maxActive}`);
  } finally {
    await w.shutdown();
    await up.close();
    await Deno.remove(w.dir, { recursive: true });
  }
});

Deno.test("the engine's own waiting queue cuts the adaptive slot count", async () => {
  const { up, engine } = kneeServer();
  const w = await startWorker({
    modelServerUrl: up.url,
    handlers: [{
      route: ROUTE,
      allowParallelRequests: true,
      maxConcurrency: "auto",
      autoConcurrency: { min: 2, max: 40, initial: 20 },
    }],
    engineMetrics: { kind: "vllm", intervalSeconds: 0.05 },
  });
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    assert.equal(await slotsOf(w.url), 20);
    // The engine runs 5 and queues 15: a quarter of the slots are its share.
    engine.active = 5;
    engine.waiting = 15;
    await waitFor(async () => await slotsOf(w.url) === 5, 3000, "cut to 5");
    // It never goes under min.
    engine.active = 0;
    await waitFor(async () => await slotsOf(w.url) === 2, 3000, "min 2");
    engine.waiting = 0;
  } finally {
    await w.shutdown();
    await up.close();
    await Deno.remove(w.dir, { recursive: true });
  }
});

Deno.test("fixed and FIFO queues show their slots too", async () => {
  const up = startUpstream();
  const w = await startWorker({
    modelServerUrl: up.url,
    handlers: [
      { route: "/echo", allowParallelRequests: true, maxConcurrency: 3 },
      { route: "/slow" },
    ],
  });
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const text = await (await fetch(`${w.url}/metrics`)).text();
    assert.match(text, /^edgeworker_concurrency_limit\{route="\/echo"\} 3$/m);
    assert.match(text, /^edgeworker_concurrency_limit\{route="\/slow"\} 1$/m);
    assert.match(text, /^edgeworker_concurrency_in_use\{route="\/echo"\} 0$/m);
  } finally {
    await w.shutdown();
    await up.close();
    await Deno.remove(w.dir, { recursive: true });
  }
});

function configErrors(handler: Record<string, unknown>): string[] {
  try {
    parseWorkerConfig({
      modelServerUrl: "http://127.0.0.1:1",
      handlers: [{ route: "/x", ...handler }],
    });
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
  return [];
}

Deno.test('"auto" and its bounds are checked, each error naming its field', () => {
  const has = (lines: string[], text: string) =>
    assert.ok(lines.some((l) => l.includes(text)), lines.join("\n"));
  has(
    configErrors({ maxConcurrency: "auto" }),
    'handlers[0].maxConcurrency: "auto" needs allowParallelRequests: true',
  );
  has(
    configErrors({
      allowParallelRequests: true,
      maxConcurrency: 4,
      autoConcurrency: { max: 8 },
    }),
    'handlers[0].autoConcurrency: only with maxConcurrency: "auto"',
  );
  const auto = { allowParallelRequests: true, maxConcurrency: "auto" };
  has(
    configErrors({ ...auto, autoConcurrency: { min: 9, max: 4 } }),
    "handlers[0].autoConcurrency.max: expected at least min (9)",
  );
  has(
    configErrors({ ...auto, autoConcurrency: { min: 2, max: 4, initial: 9 } }),
    "handlers[0].autoConcurrency.initial: expected between min (2) and max (4)",
  );
  has(
    configErrors({ ...auto, autoConcurrency: { tolerance: 1 } }),
    "handlers[0].autoConcurrency.tolerance",
  );
  has(configErrors({ ...auto, maxConcurrency: "most" }), "maxConcurrency");
  assert.deepEqual(configErrors(auto), []);
});

Deno.test("EDGEWORKER_MAX_CONCURRENCY=auto turns a preset's parallel routes adaptive", async () => {
  const up = startUpstream();
  const w = await startWorker({
    modelServerUrl: up.url,
    handlers: [
      { route: "/echo", allowParallelRequests: true },
      { route: "/slow" }, // FIFO: untouched
    ],
  }, {
    EDGEWORKER_MAX_CONCURRENCY: "auto",
    EDGEWORKER_AUTO_CONCURRENCY_MAX: "3",
  });
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    const text = await (await fetch(`${w.url}/metrics`)).text();
    assert.match(text, /^edgeworker_concurrency_limit\{route="\/echo"\} 3$/m);
    assert.match(text, /^edgeworker_concurrency_limit\{route="\/slow"\} 1$/m);
  } finally {
    await w.shutdown();
    await up.close();
    await Deno.remove(w.dir, { recursive: true });
  }
});

Deno.test("the concurrency variables are checked and merged over the config", () => {
  assert.equal(
    readEnv({ EDGEWORKER_MAX_CONCURRENCY: "auto" }).EDGEWORKER_MAX_CONCURRENCY,
    "auto",
  );
  assert.equal(
    readEnv({ EDGEWORKER_MAX_CONCURRENCY: "12" }).EDGEWORKER_MAX_CONCURRENCY,
    12,
  );
  for (const bad of ["lots", "0", "2.5"]) {
    assert.throws(
      () => readEnv({ EDGEWORKER_MAX_CONCURRENCY: bad }),
      (e: Error) =>
        e instanceof EnvError &&
        e.problems.some((p) => p.startsWith("EDGEWORKER_MAX_CONCURRENCY")),
      bad,
    );
  }
  const env = readEnv({
    EDGEWORKER_MAX_CONCURRENCY: "auto",
    EDGEWORKER_AUTO_CONCURRENCY_MAX: "4",
  });
  assert.deepEqual(
    envConcurrency({
      allowParallelRequests: true,
      maxConcurrency: 32,
      autoConcurrency: { min: 6, initial: 10 },
    }, env),
    {
      allowParallelRequests: true,
      maxConcurrency: "auto",
      autoConcurrency: { min: 4, max: 4, initial: 4 },
    },
  );
  const fifo = { allowParallelRequests: false };
  assert.equal(envConcurrency(fifo, env), fifo);
});
