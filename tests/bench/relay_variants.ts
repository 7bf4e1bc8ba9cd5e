/**
 * The minimal proxy (`minimal_proxy.ts`) with its answer passed on four
 * ways, to learn what a JS relay costs per stream (README "Benchmark",
 * "Memory"): `deno run -A tests/bench/relay_variants.ts <port> <upstream>
 * <mode>`, mode `native` (`new Response(r.body)`: the runtime's own pipe),
 * `js` (default reader → `ReadableStream`, highWaterMark 0, as the relay
 * was), `byob` (one 64 KiB buffer per stream, exact-size copies, as the
 * relay is) or `byob1k` (the same with 1 KiB).
 *
 * @module
 */

import { serveMinimalProxy } from "./minimal_proxy.ts";

const port = Number(Deno.args[0] ?? 0);
const upstream = Deno.args[1] ?? "http://127.0.0.1:18000";
const mode = Deno.args[2] ?? "native";
const bufferBytes = mode === "byob1k" ? 1024 : 64 * 1024;

function jsRelay(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

function byobRelay(
  body: ReadableStream<Uint8Array>,
): ReadableStream<Uint8Array> {
  const reader = body.getReader({ mode: "byob" });
  let buffer = new ArrayBuffer(bufferBytes);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const r = await reader.read(new Uint8Array(buffer));
      if (r.done) {
        controller.close();
        return;
      }
      buffer = r.value.buffer as ArrayBuffer;
      controller.enqueue(r.value.slice());
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

serveMinimalProxy(
  port,
  upstream,
  mode === "native" ? undefined : mode === "js" ? jsRelay : byobRelay,
);
