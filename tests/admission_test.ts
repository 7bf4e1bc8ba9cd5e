import assert from "node:assert/strict";
import { checkBudget, QueuePlan, SlotQueue } from "../lib/traffic/admission.ts";

Deno.test("SlotQueue serves waiters first come first served", async () => {
  const q = new SlotQueue(1);
  const order: number[] = [];
  const first = await q.acquire();
  const waiters = [1, 2, 3].map((n) =>
    q.acquire().then((release) => {
      order.push(n);
      release();
    })
  );
  assert.equal(q.waiting, 3);
  first();
  await Promise.all(waiters);
  assert.deepEqual(order, [1, 2, 3]);
  assert.equal(q.active, 0);
});

Deno.test("SlotQueue never lets more than N run", async () => {
  const q = new SlotQueue(3);
  let running = 0;
  let most = 0;
  await Promise.all([...Array(20).keys()].map(async () => {
    const release = await q.acquire();
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, 2));
    running--;
    release();
  }));
  assert.equal(most, 3);
});

Deno.test("a waiter that aborts leaves the line at once", async () => {
  const q = new SlotQueue(1);
  const hold = await q.acquire();
  const abort = new AbortController();
  const leaving = q.acquire(abort.signal);
  const staying = q.acquire();
  abort.abort(new Error("client left"));
  await assert.rejects(leaving, /client left/);
  assert.equal(q.waiting, 1);
  hold();
  const release = await staying;
  release();
  release(); // idempotent
  assert.equal(q.active, 0);
});

Deno.test("checkBudget refuses above maxQueueTime with a Retry-After", () => {
  assert.deepEqual(checkBudget(0, { throughput: 10, maxQueueTime: 1 }), {
    admit: true,
    waitSeconds: 0,
  });
  assert.deepEqual(checkBudget(100, { throughput: 50, maxQueueTime: 5 }), {
    admit: true,
    waitSeconds: 2,
  });
  assert.deepEqual(checkBudget(500, { throughput: 50, maxQueueTime: 5 }), {
    admit: false,
    waitSeconds: 10,
    retryAfterSeconds: 5,
  });
  assert.equal(
    checkBudget(500, { throughput: 50, maxQueueTime: null }).admit,
    true,
  );
  assert.equal(
    checkBudget(500, { throughput: undefined, maxQueueTime: 1 }).admit,
    true,
  );
});

Deno.test("QueuePlan shares one FIFO across non-parallel handlers", () => {
  const plan = new QueuePlan();
  plan.add("/a", { allowParallelRequests: false });
  plan.add("/b", { allowParallelRequests: false });
  plan.add("/c", { allowParallelRequests: true, maxConcurrency: 2 });
  plan.add("/d", { allowParallelRequests: true });
  assert.equal(plan.queueOf("/a"), plan.queueOf("/b"));
  assert.equal(plan.queueOf("/c")?.capacity, 2);
  assert.equal(plan.queueOf("/d"), null);
});

Deno.test("an adaptive queue's slots follow its limit; more slots serve waiters at once", async () => {
  const plan = new QueuePlan();
  plan.add("/auto", {
    allowParallelRequests: true,
    maxConcurrency: "auto",
    autoConcurrency: { min: 1, max: 4, initial: 1 },
  });
  plan.add("/fixed", { allowParallelRequests: true, maxConcurrency: 2 });
  const q = plan.queueOf("/auto")!;
  assert.equal(q.capacity, 1);
  assert.ok(q.limit);
  const first = await q.acquire();
  const waiting = q.acquire();
  assert.equal(q.waiting, 1);
  // Fast answers with every slot busy: the limit grows, the waiter enters.
  while (q.capacity < 2) q.observe(10, q.active);
  const second = await waiting;
  assert.equal(q.active, 2);
  // The engine queues: the limit shrinks; nobody is stopped, nobody enters.
  plan.engine(1, 3);
  assert.equal(q.capacity, 1);
  assert.equal(q.active, 2);
  const third = q.acquire();
  first();
  assert.equal(q.waiting, 1, "entered above the new limit");
  second();
  (await third)();
  // A fixed queue ignores all of it.
  const fixed = plan.queueOf("/fixed")!;
  fixed.observe(10, 2);
  fixed.overloaded();
  assert.equal(fixed.capacity, 2);
  assert.deepEqual([...plan.queues()].map(([r]) => r), ["/auto", "/fixed"]);
});
