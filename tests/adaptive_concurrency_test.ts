/**
 * `maxConcurrency: "auto"` on a real worker in front of a scripted model
 * server with a concurrency knee: the slot count `/metrics` shows settles
 * near the knee, follows it when it moves, and the model server never sees
 * more than `max` at once. Also the engine's own queue (a vLLM `/metrics`)
 * cutting the count, and the config errors.
 */
import assert from "node:assert/strict";
import { assertEnvRefused } from "./helpers/env.ts";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { sleep } from "../dev/_async.ts";
import { envConcurrency, readEnv } from "../lib/config/env.ts";
import { ConfigError, parseWorkerConfig } from "../lib/config/file.ts";
import type { HandlerConfig, WorkerConfig } from "../lib/config/types.ts";
import { post, waitFor } from "./helpers/http.ts";
import type { UpstreamOptions } from "./helpers/upstream.ts";
import {
  envelope,
  type Running,
  withUpstreamWorker,
} from "./helpers/worker.ts";

const ROUTE = "/knee";
const STREAM_ROUTE = "/knee-stream";
const BASE_MS = 30;

/** What the knee engine shows; tests move `knee`, `active` and `waiting`. */
interface KneeEngine {
  knee: number;
  active: number;
  maxActive: number;
  waiting: number;
}

/** The scripted engine: full speed up to `knee` at once, then slower in proportion. */
function kneeServer(): { engine: KneeEngine; upstream: UpstreamOptions } {
  const engine = { knee: 6, active: 0, maxActive: 0, waiting: 0 };
  const upstream: UpstreamOptions = {
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
  };
  return { engine, upstream };
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

/**
 * Runs `fn` with the knee engine and a worker in front of it whose one
 * handler is adaptive on `route` (`auto` on top: bounds, queue time);
 * `config` adds to the worker's config.
 */
function withKneeWorker(
  route: string,
  auto: Partial<HandlerConfig>,
  fn: (w: Running, engine: KneeEngine) => Promise<void>,
  config: Omit<WorkerConfig, "modelServerUrl" | "handlers"> = {},
): Promise<void> {
  const { engine, upstream } = kneeServer();
  return withUpstreamWorker(
    [{ route, allowParallelRequests: true, maxConcurrency: "auto", ...auto }],
    (w) => fn(w, engine),
    {},
    { upstream, config },
  );
}

/** The knee tests' bounds: 1 to 16 slots, no queue-time limit. */
const max = 16;
const ONE_TO_MAX: Partial<HandlerConfig> = {
  maxQueueTime: null,
  autoConcurrency: { min: 1, max },
};

Deno.test("the adaptive slot count settles near the knee, follows it, never above max", async () => {
  await withKneeWorker(ROUTE, ONE_TO_MAX, async (w, engine) => {
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
  });
});

Deno.test("a streamed answer's first chunk, not its headers, steers the count", async () => {
  await withKneeWorker(STREAM_ROUTE, ONE_TO_MAX, async (w, engine) => {
    engine.knee = 4;
    const seen = await drive(w.url, 600, 32, STREAM_ROUTE);
    const settled = median(seen.slice(Math.floor(seen.length / 2)));
    // Headers come at once: had they been the signal, the count would
    // have climbed to max.
    assert.ok(
      settled >= 4 && settled <= 8,
      `settled at ${settled} (${seen.join(" ")})`,
    );
    assert.ok(engine.maxActive <= max, `engine saw ${engine.maxActive}`);
  });
});

Deno.test("the engine's own waiting queue cuts the adaptive slot count", async () => {
  await withKneeWorker(ROUTE, {
    autoConcurrency: { min: 2, max: 40, initial: 20 },
  }, async (w, engine) => {
    assert.equal(await slotsOf(w.url), 20);
    // The engine runs 5 and queues 15: a quarter of the slots are its share.
    engine.active = 5;
    engine.waiting = 15;
    await waitFor(async () => await slotsOf(w.url) === 5, 3000, "cut to 5");
    // It never goes under min.
    engine.active = 0;
    await waitFor(async () => await slotsOf(w.url) === 2, 3000, "min 2");
    engine.waiting = 0;
  }, { engineMetrics: { kind: "vllm", intervalSeconds: 0.05 } });
});

Deno.test("fixed and FIFO queues show their slots too", async () => {
  await withUpstreamWorker([
    { route: "/echo", allowParallelRequests: true, maxConcurrency: 3 },
    { route: "/slow" },
  ], async (w) => {
    const text = await (await fetch(`${w.url}/metrics`)).text();
    assert.match(text, /^edgeworker_concurrency_limit\{route="\/echo"\} 3$/m);
    assert.match(text, /^edgeworker_concurrency_limit\{route="\/slow"\} 1$/m);
    assert.match(text, /^edgeworker_concurrency_in_use\{route="\/echo"\} 0$/m);
  });
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
  await withUpstreamWorker([
    { route: "/echo", allowParallelRequests: true },
    { route: "/slow" }, // FIFO: untouched
  ], async (w) => {
    const text = await (await fetch(`${w.url}/metrics`)).text();
    assert.match(text, /^edgeworker_concurrency_limit\{route="\/echo"\} 3$/m);
    assert.match(text, /^edgeworker_concurrency_limit\{route="\/slow"\} 1$/m);
  }, {
    EDGEWORKER_MAX_CONCURRENCY: "auto",
    EDGEWORKER_AUTO_CONCURRENCY_MAX: "3",
  });
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
    assertEnvRefused(
      { EDGEWORKER_MAX_CONCURRENCY: bad },
      "EDGEWORKER_MAX_CONCURRENCY",
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
