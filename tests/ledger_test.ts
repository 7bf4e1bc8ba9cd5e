import assert from "node:assert/strict";
import { Ledger } from "../lib/traffic/ledger.ts";

const info = (requestIdx: number, workload = 10) => ({
  requestIdx,
  reqnum: requestIdx,
  route: "/r",
  workload,
});

Deno.test("every request ends in exactly one final state", () => {
  const ledger = new Ledger();
  const a = ledger.open(info(1));
  ledger.start(a);
  assert.equal(ledger.finish(a, "success", 200), true);
  // A late abort after completion must not turn the success into a cancel.
  assert.equal(ledger.finish(a, "cancelled", 499), false);
  assert.equal(a.status, "success");
  assert.equal(ledger.inFlightCount, 0);
  assert.equal(ledger.currentLoad, 0);
  assert.deepEqual(ledger.window(), {
    received: 10,
    served: 10,
    cancelled: 0,
    errored: 0,
    rejected: 0,
  });
});

Deno.test("timestamps are ordered unix seconds", () => {
  let now = 1_700_000_000_000;
  const ledger = new Ledger({ now: () => now });
  const r = ledger.open(info(1));
  now += 500;
  ledger.start(r);
  now += 1500;
  ledger.finish(r, "error", 500, "boom");
  assert.equal(r.enteredQueueAt, 1_700_000_000);
  assert.equal(r.workStartedAt, 1_700_000_000.5);
  assert.equal(r.workCompletedAt, 1_700_000_002);
  assert.equal(r.detail, "boom");
});

Deno.test("settleWindow keeps what arrived while a report was in flight", () => {
  const ledger = new Ledger();
  ledger.finish(ledger.open(info(1, 5)), "success", 200);
  const sent = ledger.window();
  ledger.finish(ledger.open(info(2, 7)), "cancelled", 499);
  ledger.reject(info(3, 11), "budget", 429);
  ledger.settleWindow(sent);
  assert.deepEqual(ledger.window(), {
    received: 7,
    served: 0,
    cancelled: 7,
    errored: 0,
    rejected: 11,
  });
});

Deno.test("only acknowledged finished records leave the delete queue", () => {
  const ledger = new Ledger();
  ledger.finish(ledger.open(info(1)), "success", 200);
  ledger.reject(info(2), "signature", 401);
  const sent = ledger.pendingFinished();
  ledger.finish(ledger.open(info(3)), "error", 502);
  assert.equal(ledger.pendingFinishedCount, 3);
  ledger.acknowledge(sent);
  assert.deepEqual(ledger.pendingFinished().map((r) => r.requestIdx), [3]);
  assert.equal(ledger.pendingFinishedCount, 1);
});

Deno.test("sessions count in cur_load but their requests are not reported one by one", () => {
  const ledger = new Ledger();
  const session = ledger.open({
    ...info(1, 300),
    sessionId: "s",
    kind: "session",
  });
  const inner = ledger.open({ ...info(2, 20), sessionId: "s" });
  const plain = ledger.open(info(3, 5));
  assert.equal(ledger.currentLoad, 305);
  assert.equal(ledger.queueWorkload, 25);
  assert.equal(ledger.receivedCount, 1);
  ledger.finish(inner, "success", 200);
  ledger.finish(plain, "success", 200);
  ledger.finish(session, "success", 200);
  assert.deepEqual(ledger.pendingFinished().map((r) => r.requestIdx), [3, 1]);
});

Deno.test("the delete queue is bounded while the autoscaler is unreachable", () => {
  const ledger = new Ledger({ maxFinished: 3 });
  for (let i = 0; i < 5; i++) ledger.reject(info(i), "budget", 429);
  assert.deepEqual(ledger.pendingFinished().map((r) => r.requestIdx), [
    2,
    3,
    4,
  ]);
  assert.equal(ledger.droppedFinished, 2);
});

Deno.test("listeners see each change once", () => {
  const ledger = new Ledger();
  const seen: string[] = [];
  const off = ledger.subscribe((e) =>
    seen.push(`${e.type}:${e.record.requestIdx}`)
  );
  const r = ledger.open(info(1));
  ledger.start(r);
  ledger.finish(r, "success", 200);
  ledger.finish(r, "error", 500);
  ledger.reject(info(2), "sessions", 429);
  off();
  ledger.reject(info(3), "sessions", 429);
  assert.deepEqual(seen, ["open:1", "start:1", "finish:1", "reject:2"]);
});
