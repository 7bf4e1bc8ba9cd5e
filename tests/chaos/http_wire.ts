/**
 * Raw HTTP/1.1 over a TCP connection, for the chaos stand-ins: reading a
 * request head and body (Content-Length or chunked) from a buffered
 * connection, and writing bytes that may fail because the peer left.
 * `Deno.serve` cannot answer a status outside 200-599, drop a connection
 * mid-header or stall on purpose, which is why the chaos model is raw.
 *
 * @module
 */
import { concat } from "../../lib/std/bytes.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A request head as read off the wire. */
export interface RequestHead {
  method: string;
  /** Request target, e.g. `/v1/chat`. */
  path: string;
  /** Header names lower-cased. */
  headers: Map<string, string>;
}

/** A TCP connection with a read buffer. */
export class WireConn {
  readonly conn: Deno.Conn;
  // Unread bytes are #store[#start, #end).
  #store = new Uint8Array(16 * 1024);
  #start = 0;
  #end = 0;
  #closed = false;

  /** Wraps `conn`. */
  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** `true` once {@linkcode close} ran. */
  get closed(): boolean {
    return this.#closed;
  }

  get #buf(): Uint8Array {
    return this.#store.subarray(this.#start, this.#end);
  }

  /** Reads more bytes into the buffer; `false` at end of stream or error. */
  async #fill(): Promise<boolean> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#store.length - this.#end < 16 * 1024) {
      const size = this.#end - this.#start;
      const next = new Uint8Array(
        Math.max(this.#store.length, size * 2 + 32 * 1024),
      );
      next.set(this.#buf);
      this.#store = next;
      this.#start = 0;
      this.#end = size;
    }
    let n: number | null;
    try {
      n = await this.conn.read(this.#store.subarray(this.#end));
    } catch {
      return false;
    }
    if (n === null) return false;
    this.#end += n;
    return true;
  }

  #take(n: number): Uint8Array {
    const out = this.#store.slice(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  #drop(): void {
    this.#start = this.#end = 0;
  }

  #indexOfCrlfCrlf(): number {
    const b = this.#buf;
    for (let i = 0; i + 3 < b.length; i++) {
      if (
        b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10
      ) {
        return i;
      }
    }
    return -1;
  }

  /** Reads one line ending in CRLF (without it); undefined at end. */
  async readLine(): Promise<string | undefined> {
    for (;;) {
      const i = this.#buf.indexOf(10);
      if (i >= 0) {
        const line = dec.decode(this.#take(i + 1));
        return line.replace(/\r?\n$/, "");
      }
      if (!await this.#fill()) return undefined;
    }
  }

  /** Reads a request head; undefined when the peer closed first. */
  async readHead(): Promise<RequestHead | undefined> {
    for (;;) {
      const end = this.#indexOfCrlfCrlf();
      if (end >= 0) {
        const text = dec.decode(this.#take(end + 4));
        const [start, ...lines] = text.slice(0, -4).split("\r\n");
        const [method, path] = start.split(" ");
        const headers = new Map<string, string>();
        for (const l of lines) {
          const c = l.indexOf(":");
          if (c > 0) {
            headers.set(
              l.slice(0, c).trim().toLowerCase(),
              l.slice(c + 1).trim(),
            );
          }
        }
        return { method, path, headers };
      }
      if (!await this.#fill()) return undefined;
    }
  }

  /** Reads exactly `n` bytes; undefined if the peer closed first. */
  async readBytes(n: number): Promise<Uint8Array | undefined> {
    while (this.#buf.length < n) {
      if (!await this.#fill()) return undefined;
    }
    return this.#take(n);
  }

  /** Reads the body `head` announces (Content-Length or chunked). */
  async readBody(head: RequestHead): Promise<Uint8Array | undefined> {
    if ((head.headers.get("transfer-encoding") ?? "").includes("chunked")) {
      const parts: Uint8Array[] = [];
      for (;;) {
        const sizeLine = await this.readLine();
        if (sizeLine === undefined) return undefined;
        const size = parseInt(sizeLine, 16);
        if (!(size >= 0)) return undefined;
        if (size === 0) {
          // Trailers end with an empty line.
          for (;;) {
            const l = await this.readLine();
            if (l === undefined) return undefined;
            if (l === "") break;
          }
          return concat(parts);
        }
        const part = await this.readBytes(size + 2);
        if (!part) return undefined;
        parts.push(part.subarray(0, size));
      }
    }
    const length = Number(head.headers.get("content-length") ?? 0);
    return await this.readBytes(length);
  }

  /** Resolves when the peer closes the connection (bytes read meanwhile are
   * dropped). */
  async untilPeerCloses(): Promise<void> {
    while (await this.#fill()) this.#drop();
  }

  /** Writes all of `data`; `false` if the peer is gone. */
  async write(data: string | Uint8Array): Promise<boolean> {
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    try {
      let off = 0;
      while (off < bytes.length) {
        off += await this.conn.write(bytes.subarray(off));
      }
      return true;
    } catch {
      return false;
    }
  }

  /** Closes the connection (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }
}

/** One chunk of a chunked body. */
export function chunk(text: string): string {
  return `${enc.encode(text).length.toString(16)}\r\n${text}\r\n`;
}

/** Bytes of UTF-8 text. */
export function utf8(text: string): Uint8Array {
  return enc.encode(text);
}

/** UTF-8 bytes as text. */
export function text(bytes: Uint8Array): string {
  return dec.decode(bytes);
}
