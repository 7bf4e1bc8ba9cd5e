/**
 * A raw TCP "model server" whose every connection follows a script: read a
 * request, write bytes (split, late, malformed), close. For the model
 * client's awkward cases, which `Deno.serve` will not produce.
 *
 * @module
 */

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A request as the server read it. */
export interface ReadRequest {
  /** The head, request line and headers, as text. */
  head: string;
  body: string;
}

/** One accepted connection, for a script. */
export class ScriptedConn {
  #conn: Deno.Conn;
  #buf = new Uint8Array(0);
  #server: ScriptedServer;

  constructor(conn: Deno.Conn, server: ScriptedServer) {
    this.#conn = conn;
    this.#server = server;
  }

  /** Reads one request (head and `content-length` body); null at EOF. */
  async readRequest(): Promise<ReadRequest | null> {
    for (;;) {
      const text = dec.decode(this.#buf);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        const head = text.slice(0, end);
        const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        const bodyStart = enc.encode(text.slice(0, end + 4)).byteLength;
        if (this.#buf.byteLength >= bodyStart + length) {
          const body = dec.decode(
            this.#buf.subarray(bodyStart, bodyStart + length),
          );
          this.#buf = this.#buf.slice(bodyStart + length);
          this.#server.requests.push({ head, body });
          return { head, body };
        }
      }
      if (!(await this.#more())) return null;
    }
  }

  /** Resolves when the client closes the connection (EOF or reset). */
  async closedByClient(): Promise<void> {
    try {
      while (await this.#more());
    } catch { /* reset */ }
  }

  async #more(): Promise<boolean> {
    const chunk = new Uint8Array(16384);
    const n = await this.#conn.read(chunk);
    if (n === null) return false;
    const grown = new Uint8Array(this.#buf.byteLength + n);
    grown.set(this.#buf);
    grown.set(chunk.subarray(0, n), this.#buf.byteLength);
    this.#buf = grown;
    return true;
  }

  /** Writes `data` whole. */
  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    for (let at = 0; at < bytes.byteLength;) {
      at += await this.#conn.write(bytes.subarray(at));
    }
  }

  close(): void {
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}

/** A script for each connection, by its index (0 for the first). */
export type Script = (conn: ScriptedConn, index: number) => Promise<void>;

/** The running server and what it saw. */
export class ScriptedServer implements AsyncDisposable {
  readonly url: string;
  /** Every request read, in order. */
  readonly requests: ReadRequest[] = [];
  /** Connections accepted. */
  connections = 0;
  #listener: Deno.Listener;
  #scripts: Promise<void>[] = [];
  #accepting: Promise<void>;
  #open = new Set<ScriptedConn>();

  constructor(script: Script) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.url = `http://127.0.0.1:${(this.#listener.addr as Deno.NetAddr).port}`;
    this.#accepting = this.#accept(script);
  }

  async #accept(script: Script): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        const c = new ScriptedConn(conn, this);
        const index = this.connections++;
        this.#open.add(c);
        this.#scripts.push(
          script(c, index).catch(() => {}).finally(() => {
            c.close();
            this.#open.delete(c);
          }),
        );
      }
    } catch { /* listener closed */ }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    for (const c of this.#open) c.close();
    await Promise.all(this.#scripts);
  }
}

/** A JSON answer with its `content-length`. */
export function jsonAnswer(body: string, extra = ""): string {
  return `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n${extra}` +
    `content-length: ${enc.encode(body).byteLength}\r\n\r\n${body}`;
}

/** Serves `answer` to every request of every connection, keeping it open. */
export function answerEach(answer: string): Script {
  return async (conn) => {
    while (await conn.readRequest()) await conn.write(answer);
  };
}
