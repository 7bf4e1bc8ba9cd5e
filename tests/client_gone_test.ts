/**
 * A client that leaves is noticed (security issue, item 6): with envelopes
 * too big to arrive with the headers, `Deno.serve` alone does not notice a
 * client that closes while its request is queued or waits for the model.
 * The clients here are raw TCP so that FIN and RST are what the test says.
 *
 * @module
 */
import assert from "node:assert/strict";
import net from "node:net";
import {
  ClientWatch,
  connectionKey,
  readTables,
} from "../lib/traffic/client_gone.ts";
import http from "node:http";
import { Admission } from "../lib/traffic/ticket.ts";
import { Ledger } from "../lib/traffic/ledger.ts";
import { delay } from "../lib/std/async.ts";
import { envelope, startWorker } from "./helpers/worker.ts";
import { waitFor } from "./helpers/http.ts";

const HEADER =
  "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

/** A /proc/net/tcp row (the fields after the state do not matter here). */
function row(local: string, remote: string, state: string): string {
  return `   0: ${local} ${remote} ${state} 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 20 4 30 10 -1\n`;
}

// Port 3000 is 0BB8; 127.0.0.1 is printed 0100007F; port 54321 is D431.
const LISTENER = row("00000000:0BB8", "00000000:0000", "0A");
const CLIENT = "0100007F:D431";

Deno.test("readTables() finds the listener and each client's best state", () => {
  const v6 = row(`${"0".repeat(32)}:0BB8`, `${"0".repeat(32)}:0000`, "0A") +
    // ::ffff:127.0.0.1 port 54322, and 2001:db8::1 port 54323
    row(
      `${"0".repeat(32)}:0BB8`,
      "0000000000000000FFFF00000100007F:D432",
      "08",
    ) +
    row(
      `${"0".repeat(32)}:0BB8`,
      "B80D0120000000000000000001000000:D433",
      "01",
    );
  const view = readTables([
    HEADER + LISTENER + row("0100007F:0BB8", CLIENT, "08") +
    row("0100007F:0BB8", CLIENT, "01") +
    // Another port's connection from the same client port is not ours.
    row("0100007F:1F90", "0100007F:D434", "08"),
    HEADER + v6,
  ], 3000);
  assert.equal(view.listening, true);
  assert.deepEqual(Object.fromEntries(view.states), {
    [connectionKey("127.0.0.1", 54321)!]: "01",
    [connectionKey("::ffff:127.0.0.1", 54322)!]: "08",
    [connectionKey("2001:db8::1", 54323)!]: "01",
  });
  assert.equal(
    connectionKey("127.0.0.1", 54322),
    connectionKey("::ffff:127.0.0.1", 54322),
  );
  assert.equal(
    connectionKey("[2001:db8:0:0:0:0:0:1]", 1),
    connectionKey("2001:db8::1", 1),
  );
  assert.equal(connectionKey("not an address", 1), undefined);
  assert.equal(
    readTables([HEADER + row("0100007F:0BB8", CLIENT, "01")], 3000).listening,
    false,
  );
});

Deno.test("ClientWatch calls back on CLOSE_WAIT at once, on a missing row after two looks, never without the listener", async () => {
  const dir = await Deno.makeTempDir({ prefix: "client_gone_test_" });
  const table = `${dir}/tcp`;
  const watch = new ClientWatch({
    localPort: 3000,
    tables: [table, `${dir}/absent`],
    intervalMs: 60_000,
  });
  try {
    const gone: string[] = [];
    const remote = (port: number): Deno.NetAddr => ({
      transport: "tcp",
      hostname: "127.0.0.1",
      port,
    });
    watch.watch(remote(54321), () => gone.push("fin"));
    watch.watch(remote(54322), () => gone.push("rst"));
    const unwatched = watch.watch(remote(54323), () => gone.push("stopped"));

    await Deno.writeTextFile(
      table,
      HEADER + LISTENER + row("0100007F:0BB8", CLIENT, "01") +
        row("0100007F:0BB8", "0100007F:D432", "01") +
        row("0100007F:0BB8", "0100007F:D433", "01"),
    );
    await watch.check();
    assert.deepEqual([...gone], []);

    // The first client sent FIN, the second's row is gone (RST), the third
    // request ended before its client left.
    unwatched();
    await Deno.writeTextFile(
      table,
      HEADER + LISTENER + row("0100007F:0BB8", CLIENT, "08"),
    );
    await watch.check();
    assert.deepEqual([...gone], ["fin"]);
    await watch.check();
    assert.deepEqual([...gone], ["fin", "rst"]);
    assert.equal(watch.size, 0);

    // A table that does not list the worker's listener is not ours: no verdict.
    watch.watch(remote(54324), () => gone.push("foreign"));
    await Deno.writeTextFile(
      table,
      HEADER + row("0100007F:0BB8", "0100007F:D434", "08"),
    );
    for (let i = 0; i < 3; i++) await watch.check();
    assert.deepEqual([...gone], ["fin", "rst"]);
    assert.equal(watch.size, 1);
  } finally {
    await watch.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ClientWatch reads the tables only for a request one interval old: short ones never cost a look", async () => {
  const dir = await Deno.makeTempDir({ prefix: "client_gone_test_" });
  const table = `${dir}/tcp`;
  // Every client below has left (CLOSE_WAIT): a look would call back.
  await Deno.writeTextFile(
    table,
    HEADER + LISTENER + row("0100007F:0BB8", "0100007F:D432", "08") +
      row("0100007F:0BB8", "0100007F:D433", "08") +
      row("0100007F:0BB8", "0100007F:D434", "08"),
  );
  const watch = new ClientWatch({
    localPort: 3000,
    tables: [table],
    intervalMs: 300,
  });
  const remote = (port: number): Deno.NetAddr => ({
    transport: "tcp",
    hostname: "127.0.0.1",
    port,
  });
  try {
    const gone: string[] = [];
    // Two short requests back to back keep the timer running; at its first
    // tick (300 ms) the one watched is 100 ms old.
    const a = watch.watch(remote(0xd432), () => gone.push("a"));
    await delay(200);
    const b = watch.watch(remote(0xd433), () => gone.push("b"));
    a();
    await delay(220);
    b();
    assert.equal(gone.length, 0, `looked at short requests: ${gone}`);
    // A request that waits is looked at once it is an interval old.
    watch.watch(remote(0xd434), () => gone.push("c"));
    await waitFor(() => gone.length > 0, 2000, "a look");
    assert.deepEqual(gone, ["c"]);
  } finally {
    await watch.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a request stops being watched once its answer's first byte is handed on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "client_gone_test_" });
  const watch = new ClientWatch({
    localPort: 3000,
    tables: [`${dir}/tcp`],
    intervalMs: 60_000,
  });
  const admission = new Admission({ ledger: new Ledger(), clientWatch: watch });
  const limits = {
    maxQueueTime: null,
    firstByte: null,
    idle: null,
    total: null,
  };
  try {
    const ticket = admission.enter(
      { requestIdx: 1, reqnum: 1, route: "/r", workload: 1 },
      { queue: null, limits },
      new AbortController().signal,
      { transport: "tcp", hostname: "127.0.0.1", port: 54321 },
    );
    assert.equal(watch.size, 1);
    ticket.sent();
    ticket.modelAnswered(200);
    ticket.answering();
    assert.equal(watch.size, 1, "watched while the model has not answered");
    ticket.chunk();
    assert.equal(watch.size, 0);
    ticket.end("success", 200);
  } finally {
    await admission.close();
    await Deno.remove(dir, { recursive: true });
  }
});

const enc = new TextEncoder();

/** The raw HTTP/1.1 request of a ~2 KB envelope (as every real one is). */
function request(route: string, payload: Record<string, unknown>): Uint8Array {
  const body = envelope({ ...payload, prompt: "x".repeat(2000) });
  return enc.encode(
    `POST ${route} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${enc.encode(body).length}\r\n\r\n${body}`,
  );
}

/** A client that leaves with FIN: Deno's own TCP connection, closed. */
async function finClient(
  port: number,
  bytes: Uint8Array,
): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  for (let n = 0; n < bytes.length;) n += await conn.write(bytes.subarray(n));
  return conn;
}

/** A client that leaves with RST: `resetAndDestroy()` of node:net. */
async function rstClient(port: number, bytes: Uint8Array): Promise<net.Socket> {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise((resolve) => socket.once("connect", resolve));
  await new Promise((resolve) => socket.write(bytes, resolve));
  return socket;
}

/** What the model that never answers saw. */
interface SilentModel {
  url: string;
  /** Requests received. */
  calls: number;
  /** Requests whose caller (the worker) is still waiting. */
  waiting: number;
  close(): Promise<void>;
}

/**
 * A model server that never answers. It is node:http, not Deno.serve:
 * Deno.serve would not notice the worker's aborted call either (the payload
 * is as big as the envelope), as uvicorn or aiohttp would.
 */
async function startSilentModel(): Promise<SilentModel> {
  const server = http.createServer((req, res) => {
    model.calls++;
    model.waiting++;
    req.resume();
    res.on("close", () => model.waiting--);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const model: SilentModel = {
    url: `http://127.0.0.1:${port}`,
    calls: 0,
    waiting: 0,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  return model;
}

Deno.test("a client that leaves (FIN or RST) is noticed: the model call is aborted, the queued request never reaches the model, nothing stays in flight", async () => {
  const model = await startSilentModel();
  const w = await startWorker({
    modelServerUrl: model.url,
    handlers: [{ route: "/work", allowParallelRequests: false }],
  });
  let a: Deno.TcpConn | undefined;
  let b: net.Socket | undefined;
  try {
    await waitFor(() => w.lifecycle.ready, 3000, "ready");
    // A reaches the model, which never answers; B waits behind it (FIFO).
    a = await finClient(w.port, request("/work", {}));
    await waitFor(() => model.waiting === 1, 3000, "A at the model");
    b = await rstClient(w.port, request("/work", {}));
    await waitFor(
      () => [...w.ledger.inFlight].some((r) => r.status === "queued"),
      3000,
      "B queued",
    );

    const closed = new Promise((resolve) => b!.once("close", resolve));
    b.resetAndDestroy();
    await closed;
    await waitFor(
      () => w.ledger.pendingFinished().length === 1,
      3000,
      "B noticed",
    );
    const [queued] = w.ledger.pendingFinished();
    assert.equal(queued.status, "cancelled");
    assert.equal(queued.httpStatus, 499);

    a.close();
    a = undefined;
    await waitFor(() => model.waiting === 0, 3000, "model call of A aborted");
    await waitFor(
      () => w.ledger.inFlightCount === 0,
      3000,
      "nothing in flight",
    );
    const records = w.ledger.pendingFinished();
    assert.deepEqual(
      records.map((r) => [r.status, r.httpStatus]),
      [["cancelled", 499], ["cancelled", 499]],
    );
    assert.equal(w.ledger.currentLoad, 0);
    // B left while A still held the FIFO: it never reached the model.
    assert.equal(model.calls, 1);
  } finally {
    a?.close();
    b?.destroy();
    await w.stop();
    await model.close();
  }
});
