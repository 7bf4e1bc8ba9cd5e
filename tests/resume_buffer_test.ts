/**
 * The replay buffer of `lib/traffic/resumable.ts` on its own: a real
 * ledger and tickets, model bodies this test feeds chunk by chunk.
 */
import assert from "node:assert/strict";
import { Ledger } from "../lib/traffic/ledger.ts";
import {
  type ResumableStream,
  ResumeRegistry,
  STREAM_ID_HEADER,
} from "../lib/traffic/resumable.ts";
import { Admission, type RequestTicket } from "../lib/traffic/ticket.ts";

const NO_LIMITS = {
  maxQueueTime: null,
  firstByte: null,
  idle: null,
  total: null,
};

/** A model body fed by hand; says when it was cancelled. */
function modelBody(): {
  body: ReadableStream<Uint8Array>;
  push: (n: number, byte?: number) => void;
  end: () => void;
  cancelled: () => boolean;
} {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>({
    start: (c) => {
      controller = c;
    },
    cancel: () => {
      cancelled = true;
    },
  });
  return {
    body,
    push: (n, byte = 0x61) => controller.enqueue(new Uint8Array(n).fill(byte)),
    end: () => controller.close(),
    cancelled: () => cancelled,
  };
}

async function ticketOf(
  admission: Admission,
  n: number,
): Promise<RequestTicket> {
  const ticket = admission.enter(
    { requestIdx: n, reqnum: n, route: "/x", workload: 10 },
    { queue: null, limits: NO_LIMITS },
    new AbortController().signal,
  );
  assert.ok(await ticket.queue());
  ticket.sent();
  ticket.answering();
  return ticket;
}

function open(
  registry: ResumeRegistry,
  ticket: RequestTicket,
  body: ReadableStream<Uint8Array>,
): { stream: ResumableStream; client: ReadableStream<Uint8Array> } {
  const headers = new Headers({ "content-type": "application/jsonl" });
  const client = registry.start({
    ticket,
    body,
    status: 200,
    headers,
    authData: { reqnum: 1 },
    seconds: 5,
  });
  return { stream: registry.get(headers.get(STREAM_ID_HEADER)!)!, client };
}

const tick = () => new Promise((r) => setTimeout(r, 5));

Deno.test("a reading client gets every chunk as it came even when the total is taken by a stream nobody reads; the away one overflows", async () => {
  const ledger = new Ledger();
  const admission = new Admission({ ledger });
  const registry = new ResumeRegistry({ streamBytes: 1000, totalBytes: 1000 });
  try {
    // A: its client left at once; the model goes on into the buffer.
    const a = modelBody();
    const A = open(registry, await ticketOf(admission, 1), a.body);
    await A.client.cancel();
    for (let i = 0; i < 3; i++) a.push(300, 0x41);
    await tick();
    assert.equal(registry.stats.bufferedBytes, 900);

    // B: read while it comes; the 100 bytes left cannot keep its chunks.
    const b = modelBody();
    const B = open(registry, await ticketOf(admission, 2), b.body);
    const reader = B.client.getReader();
    for (let i = 0; i < 5; i++) {
      const pending = reader.read();
      b.push(300, 0x30 + i);
      const { value } = await pending;
      assert.equal(value?.length, 300, "a chunk merged or split");
      assert.equal(value?.[0], 0x30 + i);
      assert.ok(registry.stats.bufferedBytes <= 1000);
    }
    b.end();
    assert.equal((await reader.read()).done, true);

    // A's next chunk does not fit: the stream ends with an error line.
    a.push(300, 0x41);
    await tick();
    assert.ok(a.cancelled(), "the model call of the overflowed stream goes on");
    assert.equal(registry.stats.overflows, 1);
    assert.ok(registry.stats.peakBytes <= 1000);
    const text = await new Response(registry.resume(A.stream, 0)).text();
    assert.equal(text.slice(0, 900), "A".repeat(900));
    const error = JSON.parse(text.slice(900));
    assert.equal(error.error.type, "resume_buffer_overflow");
    assert.match(error.error.message, /resume buffer full/);

    const records = ledger.pendingFinished();
    assert.deepEqual(
      records.map((r) => [r.reqnum, r.status]).sort(),
      [[1, "cancelled"], [2, "success"]],
    );
    assert.equal(ledger.inFlightCount, 0);
  } finally {
    registry.close();
    await admission.close();
  }
});

Deno.test("at shutdown a live stream's model call is cancelled and recorded once", async () => {
  const ledger = new Ledger();
  const admission = new Admission({ ledger });
  const registry = new ResumeRegistry();
  try {
    const m = modelBody();
    const S = open(registry, await ticketOf(admission, 1), m.body);
    await S.client.cancel();
    m.push(10);
    await tick();
    registry.close();
    await tick();
    assert.ok(m.cancelled());
    assert.equal(ledger.inFlightCount, 0);
    assert.equal(ledger.pendingFinished().length, 1);
    assert.equal(ledger.pendingFinished()[0].status, "cancelled");
    assert.equal(registry.stats.streams, 0);
    assert.equal(registry.stats.bufferedBytes, 0);
  } finally {
    await admission.close();
  }
});
