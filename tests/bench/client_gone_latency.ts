/**
 * How long the worker takes to notice a client that leaves while the model
 * has not answered: a raw TCP client sends an envelope, waits until the
 * model (node:http, which never answers) has the call, closes with FIN or
 * RST, and the time until the model sees its call aborted is recorded.
 * Big envelopes go through `ClientWatch`, small ones through `Deno.serve`.
 *
 * `deno run -A tests/bench/client_gone_latency.ts [trials]`
 *
 * @module
 */
import http from "node:http";
import net from "node:net";
import { envelope, startWorker } from "../helpers/worker.ts";
import { waitFor } from "../helpers/http.ts";

const TRIALS = Number(Deno.args[0] ?? 20);
const enc = new TextEncoder();

let leftAt = 0;
let waiting = 0;
const latencies: number[] = [];
const model = http.createServer((req, res) => {
  waiting++;
  req.resume();
  res.on("close", () => {
    waiting--;
    latencies.push(performance.now() - leftAt);
  });
});
await new Promise<void>((resolve) => model.listen(0, "127.0.0.1", resolve));
const { port } = model.address() as { port: number };
const w = await startWorker({
  modelServerUrl: `http://127.0.0.1:${port}`,
  handlers: [{ route: "/work", allowParallelRequests: false }],
});
await waitFor(() => w.lifecycle.ready, 3000, "ready");

for (const size of [2000, 100]) {
  for (const how of ["FIN", "RST"]) {
    latencies.length = 0;
    for (let i = 0; i < TRIALS; i++) {
      const body = envelope({ prompt: "x".repeat(size) });
      const socket = net.connect(w.port, "127.0.0.1");
      await new Promise((resolve) => socket.once("connect", resolve));
      socket.write(enc.encode(
        `POST /work HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${enc.encode(body).length}\r\n\r\n${body}`,
      ));
      await waitFor(() => waiting === 1, 3000, "call at the model");
      // Leave at a random point of the watch's period.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 300));
      leftAt = performance.now();
      if (how === "RST") socket.resetAndDestroy();
      else socket.end();
      await waitFor(
        () => waiting === 0 && w.ledger.inFlightCount === 0,
        5000,
        "client noticed",
      );
      socket.destroy();
    }
    latencies.sort((a, b) => a - b);
    const at = (p: number) =>
      latencies[
        Math.min(latencies.length - 1, Math.floor(p * latencies.length))
      ]
        .toFixed(0);
    console.log(
      `envelope ~${size + 150} B, ${how}: p50 ${at(0.5)} ms, p90 ${
        at(0.9)
      } ms, max ${at(1)} ms (${latencies.length} trials)`,
    );
  }
}
const outcomes = new Set(
  w.ledger.pendingFinished().map((r) => `${r.status} ${r.httpStatus}`),
);
console.log("recorded:", [...outcomes].join(", "));
await w.stop();
model.closeAllConnections();
model.close();
