/**
 * The floor the worker is measured against: the least a forwarding proxy
 * can do, run as its own process:
 * `deno run -A tests/bench/minimal_proxy.ts <port> <upstream base URL>`.
 *
 * It parses the envelope JSON, `fetch`es its `payload` to the same path of
 * the upstream and returns `new Response(r.body, r)`. No signature check,
 * no queue, no accounting: what is left is the cost of a Deno HTTP hop.
 *
 * @module
 */

const port = Number(Deno.args[0] ?? 0);
const upstream = Deno.args[1] ?? "http://127.0.0.1:18000";

Deno.serve(
  { hostname: "127.0.0.1", port, onListen: () => {} },
  async (req) => {
    const url = new URL(req.url);
    if (req.method === "GET") return new Response("ok");
    const { payload } = await req.json();
    const r = await fetch(upstream + url.pathname, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(payload),
    });
    return new Response(r.body, r);
  },
);
