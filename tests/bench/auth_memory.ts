/**
 * What invalid requests with long urls pin in a signature-checking worker.
 * Starts the worker of this checkout in a child process (with `--expose-gc`),
 * sends `count` requests with a forged signature and a url of `chars`
 * DEL characters (6 characters each once escaped Python-style), then prints
 * the worker's heap after a full GC, before and after, and its RSS.
 *
 *     deno run -A tests/bench/auth_memory.ts [count=300] [chars=262144] [format=url]
 *
 * @module
 */
import { startWorker } from "../helpers/worker.ts";
import { startUpstream } from "../helpers/upstream.ts";
import { generateKeys, writePubkeyFile } from "../helpers/signing.ts";
import { waitFor } from "../helpers/http.ts";

const gc = (globalThis as { gc?: () => void }).gc;

if (Deno.args[0] === "--serve") {
  // Child: a worker that answers GET /heap on its own side port.
  const keys = await generateKeys();
  const dir = await Deno.makeTempDir();
  const up = startUpstream();
  const w = await startWorker({
    modelServerUrl: up.url,
    handlers: [{
      route: "/echo",
      allowParallelRequests: true,
      workload: () => 1,
    }],
  }, {
    UNSECURED: "false",
    EDGEWORKER_PUBKEY_FILE: await writePubkeyFile(dir, keys.publicPem),
    EDGEWORKER_SIGNATURE_FORMAT: Deno.args[1] ?? "url",
  });
  await waitFor(() => w.lifecycle.ready, 5000, "ready");
  const side = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => {
      gc!();
      const m = Deno.memoryUsage();
      return Response.json({ heapUsed: m.heapUsed, rss: m.rss });
    },
  );
  console.log(JSON.stringify({ url: w.url, side: side.addr.port }));
} else {
  const [count = 300, chars = 256 * 1024] = Deno.args.slice(0, 2).map(Number);
  const format = Deno.args[2] ?? "url";
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      `--config=${new URL("../../deno.json", import.meta.url).pathname}`,
      new URL(import.meta.url).pathname,
      "--serve",
      format,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const line = await new Response(child.stdout).body!.pipeThrough(
    new TextDecoderStream(),
  ).getReader().read();
  const { url, side } = JSON.parse(line.value!.split("\n")[0]);
  const heap = async () => {
    const m = await (await fetch(`http://127.0.0.1:${side}/`)).json();
    return `heap ${(m.heapUsed / 1e6).toFixed(1)} MB, rss ${
      (m.rss / 1e6).toFixed(1)
    } MB`;
  };
  console.log(`before: ${await heap()}`);
  const signature = new Uint8Array(256).fill(7).toBase64();
  const statuses: Record<number, number> = {};
  for (let i = 0; i < count; i++) {
    const body = JSON.stringify({
      auth_data: {
        cost: 1,
        endpoint: "e",
        reqnum: i,
        request_idx: i,
        signature,
        url: "http://x/" + "\x7f".repeat(chars - 15) + String(i).padStart(6),
      },
      payload: {},
    });
    const res = await fetch(`${url}/echo`, { method: "POST", body });
    await res.body?.cancel();
    statuses[res.status] = (statuses[res.status] ?? 0) + 1;
  }
  console.log(`${count} requests, url ${chars} chars, format ${format}:`);
  console.log(`answers ${JSON.stringify(statuses)}`);
  console.log(`after:  ${await heap()}`);
  child.kill();
  await child.status;
}
