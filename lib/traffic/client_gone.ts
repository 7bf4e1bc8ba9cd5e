/**
 * Noticing a client that leaves while its request waits in the queue or for
 * a model that has not answered yet.
 *
 * `Deno.serve` cannot tell in that case once the request body did not come
 * in the same read as the headers (about 400 body bytes on a fresh
 * connection, 900 on a reused one): its HTTP/1 loop reads the socket only
 * while the body is read or a streamed answer is written, so
 * `request.signal` stays quiet (deno `ext/http/http_next.rs`,
 * `wait_raw_response_ready`). The kernel knows: a client that sent FIN
 * leaves our end in CLOSE_WAIT, one that sent RST takes it out of the
 * connection table. So this module looks at Linux's `/proc/net/tcp` and
 * `/proc/net/tcp6` every `intervalMs` while a request is being watched, one
 * read for all of them, once the oldest watched request is an interval old
 * (short requests never cost a look). A request is watched until its
 * answer's first byte is handed on: from then Deno writes to the socket and
 * sees a close itself. Where the tables cannot be read or do not list the
 * worker's listening socket (another OS, another network namespace) it gives
 * no verdict at all, and the request timeouts remain the bound.
 *
 * Longer than most modules: the `/proc/net/tcp{,6}` parser and the watch that uses it belong together.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";

const log = getLogger(["edgeworker", "client_gone"]);

// include/net/tcp_states.h
const ESTABLISHED = "01";
const CLOSE_WAIT = "08";
const LISTEN = "0A";

/** Options of {@linkcode ClientWatch}. */
export interface ClientWatchOptions {
  /** The port the worker listens on: the local end of client connections. */
  localPort: number;
  /** Milliseconds between two looks at the connection tables. @default {250} */
  intervalMs?: number;
  /**
   * Connection tables to read (Linux `/proc` format).
   * @default {["/proc/net/tcp", "/proc/net/tcp6"]}
   */
  tables?: readonly string[];
}

/** What one look at the tables says about the worker's port. */
export interface TableView {
  /** The worker's listening socket is listed: the tables describe it. */
  listening: boolean;
  /** Best state of each client connection, by {@linkcode connectionKey}. */
  states: Map<string, string>;
}

interface Watched {
  key: string;
  onGone: () => void;
  /** `performance.now()` when the watch began. */
  since: number;
  /** Looks in a row that did not list the connection. */
  missing: number;
}

/**
 * Calls back when the client of a request in flight has closed its
 * connection (FIN or RST), independently of `Deno.serve`.
 *
 * @example Watching a request
 * ```ts ignore
 * const watch = new ClientWatch({ localPort: 3000 });
 * const unwatch = watch.watch(info.remoteAddr, () => abort.abort());
 * // ... when the request ends:
 * unwatch();
 * ```
 */
export class ClientWatch {
  #localPort: number;
  #intervalMs: number;
  #tables: readonly string[];
  #watched = new Set<Watched>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #looking: Promise<void> | undefined;
  #closed = false;
  #disabled = false;
  #viaCat = false;

  /** Creates a watch for connections to `localPort`. */
  constructor(options: ClientWatchOptions) {
    this.#localPort = options.localPort;
    this.#intervalMs = options.intervalMs ?? 250;
    this.#tables = options.tables ?? ["/proc/net/tcp", "/proc/net/tcp6"];
  }

  /** Requests being watched. */
  get size(): number {
    return this.#watched.size;
  }

  /**
   * Watches the connection from `remote`; `onGone` runs at most once, when
   * the client has closed it. Returns the function that stops watching.
   */
  watch(remote: Deno.Addr | undefined, onGone: () => void): () => void {
    if (this.#closed || this.#disabled || remote?.transport !== "tcp") {
      return () => {};
    }
    const key = connectionKey(remote.hostname, remote.port);
    if (key === undefined) return () => {};
    const entry: Watched = {
      key,
      onGone,
      since: performance.now(),
      missing: 0,
    };
    this.#watched.add(entry);
    this.#schedule();
    return () => {
      this.#watched.delete(entry);
      if (this.#watched.size === 0) this.#stopTimer();
    };
  }

  /** Looks at the tables now (what the timer does every `intervalMs`). */
  check(): Promise<void> {
    this.#looking ??= this.#look().finally(() => {
      this.#looking = undefined;
    });
    return this.#looking;
  }

  /** Stops watching everything; resolves once no look is in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#watched.clear();
    this.#stopTimer();
    await this.#looking;
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#closed) return;
    const timer = setTimeout(async () => {
      if (this.#due()) await this.check();
      // Stopped and restarted meanwhile: the newer timer goes on.
      if (this.#timer !== timer) return;
      this.#timer = undefined;
      if (this.#watched.size > 0) this.#schedule();
    }, this.#intervalMs);
    this.#timer = timer;
  }

  /**
   * Whether a watched request is at least one interval old. A look costs
   * the kernel a walk of every socket (about 4 ms here with 250 sockets,
   * 9 ms with 2,000) and us the parse of its text: under a steady load of
   * short requests none lives that long and the tables are not read at
   * all. A request that waits is looked at from its second interval on.
   * The set keeps insertion order: its first entry is the oldest.
   */
  #due(): boolean {
    const oldest = this.#watched.values().next().value;
    return oldest !== undefined &&
      performance.now() - oldest.since >= this.#intervalMs;
  }

  #stopTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #look(): Promise<void> {
    if (this.#watched.size === 0) return;
    const texts: string[] = [];
    for (const path of this.#tables) {
      try {
        texts.push(await this.#read(path));
      } catch (e) {
        // tcp6 is absent when IPv6 is off; only "none readable" matters.
        if (!(e instanceof Deno.errors.NotFound)) {
          this.#disable(`cannot read ${path}: ${String(e)}`);
          return;
        }
      }
    }
    if (texts.length === 0) {
      this.#disable(`none of ${this.#tables.join(", ")} exists`);
      return;
    }
    const view = readTables(texts, this.#localPort);
    // Tables that do not list our own listener describe other sockets.
    if (!view.listening) return;
    for (const entry of [...this.#watched]) {
      const state = view.states.get(entry.key);
      if (state === ESTABLISHED) {
        entry.missing = 0;
        continue;
      }
      // A row can be skipped when the table changes while it is read in
      // several parts: "not listed" must hold on two looks in a row.
      if (state === undefined && ++entry.missing < 2) continue;
      if (state !== undefined && state !== CLOSE_WAIT) continue;
      this.#watched.delete(entry);
      entry.onGone();
    }
    if (this.#watched.size === 0) this.#stopTimer();
  }

  // Deno grants nothing under /proc without --allow-all, whatever
  // --allow-read says: the least-privilege binary reads it through `cat`
  // (--allow-run=cat) instead.
  async #read(path: string): Promise<string> {
    if (!this.#viaCat) {
      try {
        return await Deno.readTextFile(path);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotCapable)) throw e;
        this.#viaCat = true;
      }
    }
    const out = await new Deno.Command("cat", {
      args: [path],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) throw new Deno.errors.NotFound(`cat ${path} failed`);
    return new TextDecoder().decode(out.stdout);
  }

  #disable(why: string): void {
    this.#disabled = true;
    this.#watched.clear();
    this.#stopTimer();
    log.warn(
      "Clients that leave are noticed only by Deno.serve from now on: {why}",
      { why },
    );
  }
}

/**
 * Reads `/proc/net/tcp{,6}` texts: whether `localPort` has a listening
 * socket, and the best state of each connection to it ("01" established wins
 * over the others).
 */
export function readTables(
  texts: readonly string[],
  localPort: number,
): TableView {
  const portHex = ":" + localPort.toString(16).toUpperCase().padStart(4, "0");
  const view: TableView = { listening: false, states: new Map() };
  for (const text of texts) {
    for (const line of text.split("\n")) {
      // Cheap filter before splitting: the local address comes first.
      const at = line.indexOf(portHex + " ");
      if (at < 0) continue;
      const fields = line.trim().split(/\s+/);
      const [local, remote, state] = [fields[1], fields[2], fields[3]];
      if (!local?.endsWith(portHex) || !remote || !state) continue;
      if (state === LISTEN) {
        view.listening = true;
        continue;
      }
      const [addr, port] = remote.split(":");
      const bytes = kernelHexBytes(addr);
      if (!bytes || !port) continue;
      const key = `${hex(bytes)}:${parseInt(port, 16)}`;
      if (view.states.get(key) !== ESTABLISHED) view.states.set(key, state);
    }
  }
  return view;
}

/**
 * The key of a client address in {@linkcode TableView.states}: its bytes
 * (IPv4-mapped IPv6 as IPv4) and port; undefined when it cannot be parsed.
 */
export function connectionKey(
  hostname: string,
  port: number,
): string | undefined {
  let host = hostKeys.get(hostname);
  if (host === undefined) {
    const bytes = textBytes(hostname);
    host = bytes ? hex(bytes) : "";
    // Clients come from few addresses; a flood of them only refills it.
    if (hostKeys.size >= HOST_KEYS_MAX) hostKeys.clear();
    hostKeys.set(hostname, host);
  }
  return host === "" ? undefined : `${host}:${port}`;
}

/** Address text → its key part ("" when it cannot be parsed), per client address. */
const hostKeys = new Map<string, string>();
const HOST_KEYS_MAX = 1024;

function hex(bytes: readonly number[]): string {
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The kernel prints each 32-bit word of an address in host order. */
function kernelHexBytes(text: string | undefined): number[] | undefined {
  if (!text || (text.length !== 8 && text.length !== 32)) return undefined;
  const bytes: number[] = [];
  for (let w = 0; w < text.length; w += 8) {
    const word = text.slice(w, w + 8);
    for (let i = 6; i >= 0; i -= 2) {
      const b = parseInt(word.slice(i, i + 2), 16);
      if (Number.isNaN(b)) return undefined;
      bytes.push(b);
    }
  }
  return unmapped(bytes);
}

function textBytes(hostname: string): number[] | undefined {
  const host = hostname.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  if (!host.includes(":")) return ipv4Bytes(host);
  let tail: number[] = [];
  let text = host;
  const lastColon = host.lastIndexOf(":");
  if (host.slice(lastColon + 1).includes(".")) {
    const v4 = ipv4Bytes(host.slice(lastColon + 1));
    if (!v4) return undefined;
    tail = v4;
    text = host.slice(0, lastColon + 1) + "0:0";
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string) => (s === "" ? [] : s.split(":"));
  const head = groups(halves[0]);
  const rest = halves.length === 2 ? groups(halves[1]) : [];
  const fill = 8 - head.length - rest.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return undefined;
  const all = [...head, ...Array(fill).fill("0"), ...rest];
  const bytes: number[] = [];
  for (const g of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    const v = parseInt(g, 16);
    bytes.push(v >> 8, v & 0xff);
  }
  if (tail.length) bytes.splice(12, 4, ...tail);
  return unmapped(bytes);
}

function ipv4Bytes(text: string): number[] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  return bytes.every((b) => b >= 0 && b <= 255) ? bytes : undefined;
}

/** `::ffff:a.b.c.d` is the IPv4 client of a dual-stack socket. */
function unmapped(bytes: number[]): number[] {
  if (bytes.length !== 16) return bytes;
  const mapped = bytes.slice(0, 10).every((b) => b === 0) &&
    bytes[10] === 0xff && bytes[11] === 0xff;
  return mapped ? bytes.slice(12) : bytes;
}
