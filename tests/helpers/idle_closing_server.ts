/**
 * A raw HTTP/1.1 model server that closes idle keep-alive connections as
 * uvicorn does (`timeout_keep_alive`): a timer armed after each answer is
 * written, cancelled when bytes arrive, closes the connection when it
 * fires; bytes read after that are dropped unseen, as a closed transport
 * drops them. `Deno.serve` cannot be told to do this, so the server is
 * built on `Deno.listen`. Each complete request it reads counts as an
 * arrival; `dropAfter` makes it answer that many requests on a connection,
 * then read the next and close without answering (a server that dies
 * holding it, on a connection the client reuses).
 *
 * @module
 */

/** Options of {@linkcode startIdleClosingServer}. */
export interface IdleClosingOptions {
  /** Idle time after an answer before the connection is closed. */
  idleMs: number;
  /**
   * Requests answered on each connection before the next one is read and
   * dropped unanswered. @default {Infinity}
   */
  dropAfter?: number;
}

/** The running server and what it saw. */
export interface IdleClosingServer extends AsyncDisposable {
  readonly url: string;
  /** Complete requests read (each would have run on the model). */
  arrivals: number;
  /** Connections accepted. */
  connections: number;
  /** Connections closed by the idle timer. */
  idleCloses: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Where the request starting at `buf[0]` ends, or -1 while incomplete. */
function requestEnd(buf: Uint8Array): number {
  const text = decoder.decode(buf);
  const headEnd = text.indexOf("\r\n\r\n");
  if (headEnd < 0) return -1;
  const head = text.slice(0, headEnd);
  const length = /\r\ncontent-length: *(\d+)/i.exec(head);
  // Byte offset of the body: the head is ASCII.
  const end = headEnd + 4 + (length ? Number(length[1]) : 0);
  return buf.length >= end ? end : -1;
}

/** Starts the server on a free 127.0.0.1 port. */
export function startIdleClosingServer(
  options: IdleClosingOptions,
): IdleClosingServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const state: IdleClosingServer = {
    url: `http://127.0.0.1:${listener.addr.port}`,
    arrivals: 0,
    connections: 0,
    idleCloses: 0,
    [Symbol.asyncDispose]: async () => {
      listener.close();
      for (const conn of open) closeQuietly(conn);
      await accepting;
    },
  };

  const closeQuietly = (conn: Deno.Conn) => {
    if (!open.delete(conn)) return;
    try {
      conn.close();
    } catch { /* already closed */ }
  };

  const serveConn = async (conn: Deno.Conn) => {
    let closed = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      timer = setTimeout(() => {
        closed = true;
        state.idleCloses++;
        closeQuietly(conn);
      }, options.idleMs);
    };
    let answered = 0;
    let buf: Uint8Array<ArrayBuffer> = new Uint8Array(0);
    const chunk = new Uint8Array(64 * 1024);
    arm();
    while (!closed) {
      let n: number | null;
      try {
        n = await conn.read(chunk);
      } catch {
        break;
      }
      // The timer may have fired while this read was completing.
      if (n === null || closed) break;
      clearTimeout(timer);
      const next = new Uint8Array(buf.length + n);
      next.set(buf);
      next.set(chunk.subarray(0, n), buf.length);
      buf = next;
      const end = requestEnd(buf);
      if (end < 0) continue;
      buf = buf.slice(end);
      state.arrivals++;
      if (answered++ >= (options.dropAfter ?? Infinity)) break;
      const body = JSON.stringify({ ok: true, n: state.arrivals });
      try {
        await conn.write(encoder.encode(
          "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" +
            `content-length: ${body.length}\r\n\r\n${body}`,
        ));
      } catch {
        break;
      }
      arm();
    }
    clearTimeout(timer);
    closeQuietly(conn);
  };

  const accepting = (async () => {
    const served: Promise<void>[] = [];
    try {
      for await (const conn of listener) {
        state.connections++;
        open.add(conn);
        served.push(serveConn(conn));
      }
    } catch { /* listener closed */ }
    await Promise.all(served);
  })();
  return state;
}
