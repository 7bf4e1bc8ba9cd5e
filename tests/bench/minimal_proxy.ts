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

/** Passes the upstream's body on; the default hands it to the runtime. */
export type Relay = (
  body: ReadableStream<Uint8Array>,
) => ReadableStream<Uint8Array>;

/** Serves the minimal proxy on 127.0.0.1:`port` in front of `upstream`. */
export function serveMinimalProxy(
  port: number,
  upstream: string,
  relay?: Relay,
): Deno.HttpServer {
  return Deno.serve(
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
      if (!r.body || !relay) return new Response(r.body, r);
      return new Response(relay(r.body), r);
    },
  );
}

if (import.meta.main) {
  serveMinimalProxy(
    Number(Deno.args[0] ?? 0),
    Deno.args[1] ?? "http://127.0.0.1:18000",
  );
}
