import assert from "node:assert/strict";
import { relayHeaders } from "../lib/http/proxy.ts";

Deno.test("relayHeaders strips hop-by-hop headers and stale encoding", () => {
  const upstream = new Headers({
    "content-type": "text/event-stream",
    "content-encoding": "gzip",
    "content-length": "120",
    "transfer-encoding": "chunked",
    connection: "keep-alive, x-private",
    "keep-alive": "timeout=5",
    "x-private": "hop",
    "x-request-id": "abc",
  });
  const out = relayHeaders(upstream);
  assert.deepEqual([...out.keys()].sort(), ["content-type", "x-request-id"]);
});

Deno.test("relayHeaders keeps content-length when the body is not re-encoded", () => {
  const out = relayHeaders(
    new Headers({ "content-type": "application/json", "content-length": "17" }),
  );
  assert.equal(out.get("content-length"), "17");
});
