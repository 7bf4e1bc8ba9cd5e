/**
 * The chaos model server: a raw HTTP/1.1 server on 127.0.0.1 (keep-alive,
 * as the worker's pooled client expects) that misbehaves per request as
 * the payload says in `payload.chaos`:
 *
 * | `chaos`               | answer                                                        |
 * | --------------------- | ------------------------------------------------------------- |
 * | `ok` (or absent)      | 200 JSON `{"ok":true,"idx":…}` with Content-Length            |
 * | `slow:<ms>`           | the same after `ms`                                           |
 * | `big:<bytes>`         | 200 JSON of about `bytes`                                     |
 * | `stream:<n>:<gap>`    | SSE, `n` events `gap` ms apart, then `data: [DONE]` (chunked) |
 * | `status:<code>`       | JSON error with that status line, any code 100-999            |
 * | `odd-stream:<code>`   | an SSE stream of 3 events under that status line              |
 * | `crash`               | closes the connection without an answer                       |
 * | `crash-headers`       | half a status line, then closes                               |
 * | `garbage`             | bytes that are not HTTP, then closes                          |
 * | `break-body`          | announces 1000 bytes, sends 10, closes                        |
 * | `break-stream:<k>`    | `k` SSE events, then closes mid-body                          |
 * | `stall`               | never answers (until the worker hangs up)                     |
 * | `stall-stream:<k>`    | `k` SSE events, then nothing (until the worker hangs up)      |
 * | `no-length`           | 200 JSON without Content-Length, ended by closing             |
 *
 * Every answer it makes carries `x-chaos-model: 1`, so the harness can tell
 * a relayed model answer from one the worker wrote. It keeps, per
 * `payload.idx`, how often the request arrived and how its call ended, so
 * the harness can check that no call stays open and none is sent twice.
 *
 * @module
 */
import { delay } from "../../lib/std/async.ts";
import { chunk, type RequestHead, text, WireConn } from "./http_wire.ts";

/** How one model call ended. */
export type CallEnd =
  /** Still being answered (a stall the worker never hung up on). */
  | "open"
  /** Answered in full. */
  | "done"
  /** The worker closed the connection before the answer ended. */
  | "worker-left"
  /** The model dropped the connection on purpose. */
  | "dropped";

/** What the model saw of one `idx`. */
export interface ModelCall {
  idx: number;
  chaos: string;
  /** Times this idx arrived (more than 1: forwarded twice). */
  arrivals: number;
  end: CallEnd;
}

/** A running chaos model. */
export interface ChaosModel {
  readonly url: string;
  /** Calls by `payload.idx`. */
  readonly calls: ReadonlyMap<number, ModelCall>;
  /** Inference requests without a numeric `payload.idx`. */
  readonly anonymous: number;
  /** Connections open now (the worker's pool plus stalls). */
  readonly connections: number;
  /** Stops listening and drops every connection. */
  close(): Promise<void>;
}

const MODEL_HEADER = "x-chaos-model: 1\r\n";

function jsonAnswer(status: number, body: unknown, close = false): string {
  const json = JSON.stringify(body);
  return `HTTP/1.1 ${status} Chaos\r\ncontent-type: application/json\r\n` +
    MODEL_HEADER +
    `content-length: ${new TextEncoder().encode(json).length}\r\n` +
    (close ? "connection: close\r\n" : "") + `\r\n${json}`;
}

const STREAM_HEAD = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n" +
  MODEL_HEADER + "transfer-encoding: chunked\r\n\r\n";

/** Starts the chaos model on a free port. */
export function startChaosModel(): ChaosModel {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const calls = new Map<number, ModelCall>();
  const open = new Set<WireConn>();
  let anonymous = 0;
  let closing = false;
  const tasks = new Set<Promise<void>>();

  const track = (p: Promise<void>) => {
    tasks.add(p);
    void p.finally(() => tasks.delete(p));
  };

  const accept = async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // listener closed
      }
      const wire = new WireConn(conn);
      open.add(wire);
      track(
        serve(wire).finally(() => {
          wire.close();
          open.delete(wire);
        }),
      );
    }
  };

  /** Serves requests on one connection until it closes. */
  const serve = async (wire: WireConn): Promise<void> => {
    while (!closing) {
      const head = await wire.readHead();
      if (!head) return;
      const body = await wire.readBody(head);
      if (!body) return;
      const keep = await answer(wire, head, body);
      if (!keep) return;
    }
  };

  /** Answers one request; `false` when the connection must end. */
  const answer = async (
    wire: WireConn,
    head: RequestHead,
    body: Uint8Array,
  ): Promise<boolean> => {
    if (head.method === "GET" && head.path.startsWith("/health")) {
      return await wire.write(jsonAnswer(200, { status: "ok" }));
    }
    let payload: Record<string, unknown> = {};
    try {
      const parsed = JSON.parse(text(body));
      if (parsed && typeof parsed === "object") payload = parsed;
    } catch { /* not JSON: answered as "ok" */ }
    const chaos = typeof payload.chaos === "string" ? payload.chaos : "ok";
    const idx = typeof payload.idx === "number" ? payload.idx : undefined;
    let call: ModelCall | undefined;
    if (idx === undefined) anonymous++;
    else {
      call = calls.get(idx);
      if (call) call.arrivals++;
      else calls.set(idx, call = { idx, chaos, arrivals: 1, end: "open" });
      call.end = "open";
    }
    const ended = (end: CallEnd, keep: boolean): boolean => {
      if (call) call.end = end;
      return keep;
    };
    const [kind, a, b] = chaos.split(":");
    const n = (s: string | undefined, d: number) =>
      Number.isFinite(Number(s)) && s !== undefined && s !== "" ? Number(s) : d;
    switch (kind) {
      case "slow":
        await delay(n(a, 100));
        return ended(
          (await wire.write(jsonAnswer(200, { ok: true, idx })))
            ? "done"
            : "worker-left",
          true,
        );
      case "big": {
        const pad = "x".repeat(Math.max(0, n(a, 100_000)));
        return ended(
          (await wire.write(jsonAnswer(200, { ok: true, idx, pad })))
            ? "done"
            : "worker-left",
          true,
        );
      }
      case "stream":
      case "break-stream":
      case "stall-stream": {
        const events = n(a, 5);
        const gap = n(b, 10);
        if (!await wire.write(STREAM_HEAD)) return ended("worker-left", false);
        for (let i = 0; i < events; i++) {
          if (i > 0 || kind === "stream") await delay(gap);
          if (!await wire.write(chunk(`data: {"i":${i},"idx":${idx}}\n\n`))) {
            return ended("worker-left", false);
          }
        }
        if (kind === "break-stream") return ended("dropped", false);
        if (kind === "stall-stream") {
          await wire.untilPeerCloses();
          return ended("worker-left", false);
        }
        const ok = await wire.write(chunk("data: [DONE]\n\n") + "0\r\n\r\n");
        return ended(ok ? "done" : "worker-left", ok);
      }
      case "status": {
        const status = n(a, 500);
        const ok = await wire.write(
          jsonAnswer(status, { error: `model says ${status}`, idx }),
        );
        return ended(ok ? "done" : "worker-left", ok);
      }
      case "odd-stream": {
        const head = STREAM_HEAD.replace("200 OK", `${n(a, 600)} Chaos`);
        let ok = await wire.write(head);
        for (let i = 0; ok && i < 3; i++) {
          ok = await wire.write(chunk(`data: {"i":${i},"idx":${idx}}\n\n`));
        }
        ok = ok && await wire.write(chunk("data: [DONE]\n\n") + "0\r\n\r\n");
        return ended(ok ? "done" : "worker-left", ok);
      }
      case "crash":
        return ended("dropped", false);
      case "crash-headers":
        await wire.write("HTTP/1.1 200 OK\r\ncontent-le");
        return ended("dropped", false);
      case "garbage":
        await wire.write("SSH-2.0-OpenSSH_9.6 not http at all\r\n\r\n");
        return ended("dropped", false);
      case "break-body":
        await wire.write(
          "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" +
            MODEL_HEADER + 'content-length: 1000\r\n\r\n{"partial":',
        );
        return ended("dropped", false);
      case "stall":
        await wire.untilPeerCloses();
        return ended("worker-left", false);
      case "no-length": {
        const json = JSON.stringify({ ok: true, idx });
        const ok = await wire.write(
          "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" +
            MODEL_HEADER + `connection: close\r\n\r\n${json}`,
        );
        return ended(ok ? "done" : "worker-left", false);
      }
      default: {
        const ok = await wire.write(jsonAnswer(200, { ok: true, idx }));
        return ended(ok ? "done" : "worker-left", ok);
      }
    }
  };

  const acceptLoop = accept();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    calls,
    get anonymous() {
      return anonymous;
    },
    get connections() {
      return open.size;
    },
    async close() {
      closing = true;
      listener.close();
      await acceptLoop;
      for (const w of open) w.close();
      await Promise.all([...tasks]);
    },
  };
}
