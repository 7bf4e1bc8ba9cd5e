/**
 * Raw TCP clients of the worker, for what `fetch` cannot do: leave on a
 * fresh connection before the first answer byte, send half a body, lie in
 * Content-Length, or hold idle connections with half a request head.
 *
 * @module
 */
import { WireConn } from "./http_wire.ts";

const enc = new TextEncoder();

/** What a raw exchange saw. */
export interface RawResult {
  /** Status of the answer, when one arrived before we left. */
  status?: number;
  /** Its body (bounded), when read. */
  body?: string;
  /** Its headers, lower-cased. */
  headers?: Map<string, string>;
  /** The connection failed (refused, reset). */
  error?: string;
}

/** How a raw request is sent and when we leave. */
export interface RawRequestOptions {
  port: number;
  path: string;
  /** The body bytes to announce and (unless `sendBytes`) send. */
  body: Uint8Array;
  /** Announced Content-Length. @default body.length */
  contentLength?: number;
  /** Bytes of the body actually sent. @default all */
  sendBytes?: number;
  /** Close this many ms after sending; without it, wait for the answer. */
  leaveAfterMs?: number;
  /** Longest wait for an answer. @default 15000 */
  timeoutMs?: number;
  /** A first request's body, sent and answered on the same (keep-alive)
   * connection before this one. */
  warmBody?: Uint8Array;
}

function requestHead(
  port: number,
  path: string,
  length: number,
  close: boolean,
): string {
  return `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n` +
    `content-type: application/json\r\ncontent-length: ${length}\r\n` +
    (close ? `connection: close\r\n` : "") + `\r\n`;
}

/** Sends one request on a fresh connection (`connection: close`). */
export async function rawRequest(o: RawRequestOptions): Promise<RawResult> {
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port: o.port });
  } catch (e) {
    return { error: String(e) };
  }
  const wire = new WireConn(conn);
  try {
    if (o.warmBody) {
      const head = requestHead(o.port, o.path, o.warmBody.length, false);
      if (
        !await wire.write(enc.encode(head)) || !await wire.write(o.warmBody)
      ) {
        return { error: "write failed" };
      }
      const first = await readAnswer(wire, o.timeoutMs ?? 15_000);
      if (first.status !== 200) {
        return {
          error: `first request answered ${first.status ?? first.error}`,
        };
      }
    }
    const length = o.contentLength ?? o.body.length;
    const head = requestHead(o.port, o.path, length, !o.warmBody);
    const sent = o.body.subarray(0, o.sendBytes ?? o.body.length);
    const bytes = new Uint8Array(head.length + sent.length);
    bytes.set(enc.encode(head));
    bytes.set(sent, head.length);
    if (!await wire.write(bytes)) return { error: "write failed" };
    if (o.leaveAfterMs !== undefined) {
      await new Promise((r) => setTimeout(r, o.leaveAfterMs));
      return {};
    }
    return await readAnswer(wire, o.timeoutMs ?? 15_000);
  } finally {
    wire.close();
  }
}

/** Reads a response head and its Content-Length body (keeps 64 KiB). */
async function readAnswer(
  wire: WireConn,
  timeoutMs: number,
): Promise<RawResult> {
  const timer = setTimeout(() => wire.close(), timeoutMs);
  try {
    const status = await wire.readLine();
    if (status === undefined) return { error: "closed before an answer" };
    const code = Number(status.split(" ")[1]);
    const headers = new Map<string, string>();
    for (;;) {
      const line = await wire.readLine();
      if (line === undefined || line === "") break;
      const c = line.indexOf(":");
      if (c > 0) {
        headers.set(
          line.slice(0, c).trim().toLowerCase(),
          line.slice(c + 1).trim(),
        );
      }
    }
    const length = Number(headers.get("content-length") ?? NaN);
    let body = "";
    if (Number.isFinite(length)) {
      const bytes = await wire.readBytes(length);
      body = bytes
        ? new TextDecoder().decode(bytes.subarray(0, 64 * 1024))
        : "";
    }
    return { status: code, headers, body };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Opens `count` connections that each send half a request head and hold
 * it for `holdMs` (slow clients, idle keep-alives), then close them all.
 * Resolves to how many connections were opened.
 */
export async function holdIdleConnections(
  port: number,
  count: number,
  holdMs: number,
): Promise<number> {
  const conns: Deno.Conn[] = [];
  try {
    for (let i = 0; i < count; i++) {
      try {
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        conns.push(c);
        await c.write(enc.encode(`POST /v1/chat HTTP/1.1\r\nhost: x\r\n`));
      } catch {
        break; // refused or reset: the worker is at its limit
      }
    }
    await new Promise((r) => setTimeout(r, holdMs));
    return conns.length;
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* reset by the worker */ }
    }
  }
}
