/**
 * Raw TCP clients for tests that need what `fetch` will not do: headers
 * never finished, bodies that stop, connections left idle.
 */

const enc = new TextEncoder();

/** Opens a TCP connection to 127.0.0.1:`port` and writes `text`, if any. */
export async function rawConnect(
  port: number,
  text = "",
): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, text);
  return conn;
}

/** Writes all of `text` (`write` may take only part of it). */
export async function writeAll(conn: Deno.Conn, text: string): Promise<void> {
  const bytes = enc.encode(text);
  for (let at = 0; at < bytes.length;) {
    at += await conn.write(bytes.subarray(at));
  }
}

/** What came back on a raw connection. */
export interface RawOutcome {
  /** Everything the server sent, as text. */
  text: string;
  /** The server closed the connection within the wait. */
  closed: boolean;
}

/**
 * Reads until the server closes `conn` or `waitMs` passes; `conn` is closed
 * either way.
 */
export async function readUntilClosed(
  conn: Deno.Conn,
  waitMs: number,
): Promise<RawOutcome> {
  const buf = new Uint8Array(16384);
  const dec = new TextDecoder();
  let text = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<"limit">((r) => {
    timer = setTimeout(() => r("limit"), waitMs);
  });
  try {
    for (;;) {
      const n = await Promise.race([conn.read(buf).catch(() => null), limit]);
      if (n === "limit") return { text, closed: false };
      if (n === null) return { text, closed: true };
      text += dec.decode(buf.subarray(0, n), { stream: true });
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed already */ }
  }
}

/**
 * Reads one whole answer with a `content-length` from `conn`, leaving the
 * connection open; undefined when the server closes it first.
 */
export async function readResponse(
  conn: Deno.Conn,
): Promise<{ status: number; body: string } | undefined> {
  const buf = new Uint8Array(16384);
  const dec = new TextDecoder();
  let text = "";
  for (;;) {
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const length = Number(
        text.slice(0, end).match(/content-length: *(\d+)/i)?.[1] ?? 0,
      );
      if (text.length >= end + 4 + length) {
        return {
          status: Number(text.slice(9, 12)),
          body: text.slice(end + 4, end + 4 + length),
        };
      }
    }
    const n = await conn.read(buf).catch(() => null);
    if (n === null) return undefined;
    text += dec.decode(buf.subarray(0, n), { stream: true });
  }
}

/** Status and JSON body of the one answer in `text`. */
export function parseAnswer(text: string): { status: number; body: unknown } {
  const end = text.indexOf("\r\n\r\n");
  return {
    status: Number(text.slice(9, 12)),
    body: JSON.parse(text.slice(end + 4)),
  };
}
