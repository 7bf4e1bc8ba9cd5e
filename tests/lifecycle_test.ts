import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { Lifecycle, type Transition } from "../lib/model/lifecycle.ts";
import { captureLogs } from "./helpers/logs.ts";

/** A lifecycle on a clock the test moves by hand (ms). */
function manual(startedAt = 1_000_000) {
  const clock = { now: startedAt };
  const life = new Lifecycle({ startedAt, now: () => clock.now });
  const seen: Transition[] = [];
  life.subscribe((t) => seen.push(t));
  return { clock, life, seen };
}

/** A record's message with its properties filled in. */
function text(r: LogRecord): string {
  return r.message.map(String).join("");
}

Deno.test("Lifecycle logs each transition once, with its cause and timing", async () => {
  await using logs = await captureLogs(["edgeworker", "lifecycle"]);
  const { clock, life, seen } = manual();
  assert.equal(life.state, "starting");
  clock.now += 250;
  assert.equal(life.to("loading", "waiting for the load line"), true);
  assert.equal(life.to("loading", "again"), false);
  clock.now += 1500;
  assert.equal(life.to("benchmarking", "model loaded"), true);
  clock.now += 750;
  assert.equal(life.to("ready", "max_perf 200.00"), true);
  assert.equal(life.to("ready", "again"), false);

  assert.deepEqual(seen, [
    {
      from: "starting",
      to: "loading",
      cause: "waiting for the load line",
      at: 0.25,
    },
    { from: "loading", to: "benchmarking", cause: "model loaded", at: 1.75 },
    { from: "benchmarking", to: "ready", cause: "max_perf 200.00", at: 2.5 },
  ]);
  assert.deepEqual(logs.records.map(text), [
    "State starting -> loading after 0.25s: waiting for the load line",
    "State loading -> benchmarking after 1.75s: model loaded",
    "State benchmarking -> ready after 2.50s: max_perf 200.00",
  ]);
  assert.deepEqual(logs.records.map((r) => r.level), ["info", "info", "info"]);
});

Deno.test("Lifecycle loadtime is process start to the last time it became ready", () => {
  const { clock, life } = manual();
  assert.equal(life.loadtime, 0);
  assert.equal(life.ready, false);
  clock.now += 4200;
  life.to("loading", "x");
  assert.equal(life.loadtime, 0, "loadtime is set by ready only");
  clock.now += 800;
  life.to("ready", "loaded");
  assert.equal(life.loadtime, 5);
  assert.equal(life.ready, true);
  // A new load (a restarted model server) counts again from the process
  // start, as Python recomputes it on a second load line.
  clock.now += 3000;
  life.fail("health check failed");
  assert.equal(life.loadtime, 5, "an error keeps the last loadtime");
  clock.now += 1000;
  life.to("ready", "healthy again");
  assert.equal(life.loadtime, 9);
});

Deno.test("Lifecycle: a degraded check keeps a ready worker in error until every failing check passes, loadtime kept", () => {
  const { clock, life } = manual();
  assert.equal(life.degrade("canary", "hangs"), false, "not ready yet");
  clock.now += 2000;
  life.to("ready", "loaded");
  assert.equal(life.loadtime, 2);
  clock.now += 1000;
  assert.equal(life.degrade("canary", "generation hangs"), true);
  assert.equal(life.degrade("health check", "health 503"), true);
  assert.equal(life.state, "error");
  assert.equal(life.fatal, false);
  assert.deepEqual(life.degradedBy, ["canary", "health check"]);
  assert.equal(life.restore("health check"), true);
  assert.equal(life.state, "error", "the canary still fails");
  assert.equal(life.errorMsg, "generation hangs");
  clock.now += 5000;
  assert.equal(life.restore("canary"), true);
  assert.equal(life.state, "ready");
  assert.equal(life.errorMsg, "");
  assert.equal(life.loadtime, 2, "a recovery is not a load");
  assert.equal(life.restore("canary"), false, "nothing to restore");
  // An error of its own is not undone by a check passing.
  life.degrade("canary", "hangs");
  life.fail("public key gone");
  assert.equal(life.restore("canary"), false);
  assert.equal(life.state, "error");
  assert.equal(life.errorMsg, "public key gone");
});

Deno.test("Lifecycle: an error is logged at error level with its message", async () => {
  await using logs = await captureLogs(["edgeworker", "lifecycle"]);
  const { clock, life, seen } = manual();
  clock.now += 100;
  life.to("loading", "waiting");
  clock.now += 400;
  assert.equal(life.fail("Benchmark failed: all 12 requests failed"), true);
  assert.equal(life.state, "error");
  assert.equal(life.errorMsg, "Benchmark failed: all 12 requests failed");
  assert.equal(life.fatal, false);
  assert.equal(life.ready, false);
  assert.deepEqual(seen.at(-1), {
    from: "loading",
    to: "error",
    cause: "Benchmark failed: all 12 requests failed",
    at: 0.5,
  });
  const last = logs.records.at(-1)!;
  assert.equal(last.level, "error");
  assert.equal(
    text(last),
    "State loading -> error after 0.50s: Benchmark failed: all 12 requests failed",
  );
});

Deno.test("Lifecycle: fail() while in error updates the message without a new transition", async () => {
  await using logs = await captureLogs(["edgeworker", "lifecycle"]);
  const { life, seen } = manual();
  life.to("ready", "loaded");
  assert.equal(life.fail("health check failed 2 times"), true);
  const transitions = seen.length;
  const logged = logs.records.length;
  assert.equal(life.fail("health check failed 2 times"), false, "same text");
  assert.equal(life.fail("Public key not loaded after 60 s"), true);
  assert.equal(life.state, "error");
  assert.equal(life.errorMsg, "Public key not loaded after 60 s");
  assert.equal(seen.length, transitions, "no second transition");
  assert.equal(logs.records.length, logged, "no second transition logged");
  // Recovery clears the message.
  assert.equal(life.to("ready", "healthy again"), true);
  assert.equal(life.errorMsg, "");
});

/**
 * In a final state every move but draining is refused: each call answers
 * false, and no transition is announced.
 */
function assertNoWayOut(life: Lifecycle, seen: unknown[]): void {
  const transitions = seen.length;
  assert.equal(life.to("ready", "healthy again"), false);
  assert.equal(life.to("loading", "restart"), false);
  assert.equal(life.to("benchmarking", "model loaded"), false);
  assert.equal(life.fail("health check failed"), false);
  assert.equal(life.fail("another fatal line", { fatal: true }), false);
  assert.equal(seen.length, transitions);
}

Deno.test("Lifecycle: a fatal error is final", () => {
  const { life, seen } = manual();
  life.to("loading", "waiting");
  assert.equal(life.fail("CUDA out of memory", { fatal: true }), true);
  assert.equal(life.fatal, true);
  assertNoWayOut(life, seen);
  assert.equal(life.state, "error");
  assert.equal(life.errorMsg, "CUDA out of memory");
  assert.equal(life.fatal, true);
  // Shutting down is still possible, and keeps the message.
  assert.equal(life.to("draining", "SIGTERM"), true);
  assert.equal(life.state, "draining");
  assert.equal(life.errorMsg, "CUDA out of memory");
});

Deno.test("Lifecycle: a fatal error while in a non-fatal error becomes final", () => {
  const { life } = manual();
  life.to("ready", "loaded");
  life.fail("health check failed");
  assert.equal(life.fatal, false);
  assert.equal(life.fail("Traceback: engine died", { fatal: true }), true);
  assert.equal(life.fatal, true);
  assert.equal(life.errorMsg, "Traceback: engine died");
  assert.equal(life.to("ready", "healthy again"), false);
  assert.equal(life.state, "error");
});

Deno.test("Lifecycle: draining is final", () => {
  const { life, seen } = manual();
  life.to("ready", "loaded");
  assert.equal(life.to("draining", "SIGTERM"), true);
  assertNoWayOut(life, seen);
  assert.equal(life.state, "draining");
  assert.equal(life.errorMsg, "");
  assert.equal(life.ready, false);
});

Deno.test("Lifecycle: a removed listener hears nothing more", () => {
  const life = new Lifecycle();
  const heard: string[] = [];
  const remove = life.subscribe((t) => heard.push(t.to));
  life.to("loading", "x");
  remove();
  life.to("ready", "y");
  assert.deepEqual(heard, ["loading"]);
});

Deno.test("onChange hears transitions and a new error message while in error", () => {
  const life = new Lifecycle();
  let changes = 0;
  const off = life.onChange(() => changes++);
  life.to("loading", "waiting");
  life.fail("health probe failed");
  life.fail("health probe failed");
  life.fail("Model error: CUDA out of memory", { fatal: true });
  off();
  life.to("draining", "SIGTERM");
  assert.equal(changes, 3);
  assert.equal(life.errorMsg, "Model error: CUDA out of memory");
});

Deno.test("shutdown drains even from a fatal error, keeping its message", () => {
  const life = new Lifecycle();
  life.fail("Model error: CUDA out of memory", { fatal: true });
  assert.equal(life.to("ready", "health ok"), false);
  assert.equal(life.to("draining", "SIGTERM"), true);
  assert.equal(life.state, "draining");
  assert.equal(life.errorMsg, "Model error: CUDA out of memory");
});
