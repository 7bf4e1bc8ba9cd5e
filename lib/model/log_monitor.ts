/**
 * Tails the model server's log file and reports lines that match patterns.
 *
 * Lines are matched as a terminal shows them: ANSI escapes removed and a
 * lone `\r` (a progress bar redrawing itself) ending a line, since Vast's
 * `log-tee` keeps colours and progress bars in the portal logs. It follows
 * the file across creation, rotation by rename (log-tee's `os.replace` of a
 * copy of the last 1 MB, whose copied lines are not read twice; the `.old`
 * rename at each program start) and truncation.
 *
 * Longer than most modules: tailing a file across rotation, truncation and
 * log-tee's copied prefix is one state machine with its byte bookkeeping.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { dirname, resolve } from "node:path";
import { LineSplitter } from "./line_splitter.ts";

const log = getLogger(["edgeworker", "log_monitor"]);
const READ_CHUNK = 64 * 1024;
const STREAM = { stream: true };

/** A log pattern: a case-sensitive substring, or a regular expression. */
export type Pattern = string | RegExp;

/**
 * What a matching line means, after the Python `LogAction`s; `startupError`
 * is fatal only until the worker was first ready (the reader decides).
 */
export type LogEventKind = "load" | "error" | "startupError" | "info";

/** One matching line. */
export interface LogEvent {
  /** Which action list matched. */
  kind: LogEventKind;
  /** The whole line, without its terminator. */
  line: string;
  /** The pattern that matched: the string itself, or a RegExp's `source`. */
  pattern: string;
}

/** Pattern lists; a line is checked against them in this order. */
export interface LogActions {
  /** Lines that mean "model loaded". */
  onLoad?: Pattern[];
  /** Lines that mean "fatal model error". */
  onError?: Pattern[];
  /** Lines fatal while the model server starts, counted once it served. */
  onStartupError?: Pattern[];
  /** Lines worth reporting as information. */
  onInfo?: Pattern[];
}

/** Options for {@linkcode LogMonitor}. */
export interface LogMonitorOptions {
  /** The log file; it may not exist yet. */
  path: string;
  /**
   * `"start"` reads what the file already holds (as Python does); `"end"`
   * only reads bytes written after {@linkcode LogMonitor.start}, so stale
   * lines of a previous boot cannot fire. A file that appears later, or a
   * rotated one, is always read from its start.
   *
   * @default {"start"}
   */
  from?: "start" | "end";
  /**
   * How often to `stat` the file, in ms. The fallback for file systems that
   * send no watch events (NFS, FUSE, Docker Desktop mounts).
   *
   * @default {1000}
   */
  pollIntervalMs?: number;
  /**
   * Watch the parent directory for changes. Turn off to rely on polling.
   *
   * @default {true}
   */
  watch?: boolean;
  /**
   * Longest line kept; longer lines are matched on their head only.
   *
   * @default {65536}
   */
  maxLineLength?: number;
  /** Pattern lists. */
  actions: LogActions;
  /** Called once per matching line (first match wins), in file order. */
  onEvent: (event: LogEvent) => void;
  /** Called for every line, matching or not, after `onEvent`. */
  onLine?: (line: string) => void;
  /** Called each time the file is opened (it appeared, or was rotated). */
  onOpen?: () => void;
}

/**
 * Bytes of the end of a rotated file looked for in its successor: enough to
 * be unique (log lines carry times), well under what log-tee keeps (1 MB).
 */
const OVERLAP_BYTES = 512;
/** How far into a new file the copied end of the old one is looked for. */
const OVERLAP_SEARCH_BYTES = 2 * 1024 * 1024;

// CSI (colours, cursor moves, erase), OSC (titles, links), other 2-byte ESC.
const ANSI =
  // deno-lint-ignore no-control-regex
  /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])/g;
const LONE_CR = /\r(?!\n)/g;

/** A line as a terminal would show it: ANSI escape sequences removed. */
export function stripAnsi(line: string): string {
  return line.includes("\x1b") ? line.replace(ANSI, "") : line;
}

/** Where `needle` first occurs in `hay`, or -1. */
function indexOfBytes(hay: Uint8Array, needle: Uint8Array): number {
  if (needle.length === 0) return -1;
  const first = needle[0];
  const last = hay.length - needle.length;
  for (
    let i = hay.indexOf(first);
    i !== -1 && i <= last;
    i = hay.indexOf(first, i + 1)
  ) {
    let j = 1;
    while (j < needle.length && hay[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

type Rule = [LogEventKind, Pattern];

/** The rules of `actions`, in matching order: load, error, startup, info. */
function rulesOf(actions: LogActions): Rule[] {
  const { onLoad = [], onError = [], onStartupError = [], onInfo = [] } =
    actions;
  return [
    ...onLoad.map((p): Rule => ["load", p]),
    ...onError.map((p): Rule => ["error", p]),
    ...onStartupError.map((p): Rule => ["startupError", p]),
    ...onInfo.map((p): Rule => ["info", p]),
  ];
}

function matchRule(rules: Rule[], line: string): Rule | undefined {
  return rules.find(([, p]) =>
    typeof p === "string" ? line.includes(p) : line.search(p) !== -1
  );
}

/**
 * What `line` (as read from the file) means under `actions`, as
 * {@linkcode LogMonitor} decides it: ANSI escapes removed, first match wins.
 */
export function classifyLine(
  actions: LogActions,
  line: string,
): LogEventKind | undefined {
  return matchRule(rulesOf(actions), stripAnsi(line))?.[0];
}

/**
 * Follows a log file across creation, rotation (rename and recreate) and
 * truncation, and calls `onEvent` for each complete line that matches.
 *
 * @example Usage
 * ```ts
 * import { LogMonitor } from "./log_monitor.ts";
 *
 * const monitor = new LogMonitor({
 *   path: "/var/log/model.log",
 *   actions: { onLoad: ["Application startup complete."] },
 *   onEvent: (event) => console.log(event.kind, event.line),
 * });
 * await monitor.start();
 * await monitor.close();
 * ```
 */
export class LogMonitor {
  #path: string;
  #opts: LogMonitorOptions;
  #rules: Rule[];
  #splitter: LineSplitter;
  #decoder = new TextDecoder("utf-8", { fatal: false });
  #buf = new Uint8Array(READ_CHUNK);
  #file: Deno.FsFile | undefined;
  #ino: number | null = null;
  #dev = 0;
  #offset = 0;
  #skipExisting: boolean;
  #closed = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #watcher: Deno.FsWatcher | undefined;
  #watching: Promise<void> | undefined;
  #pumping: Promise<void> | undefined;
  #again = false;
  #lastProblem = "";
  // The last bytes read from the current file, and those of a rotated one.
  #tail = new Uint8Array(0);
  #overlap: Uint8Array | undefined;

  /**
   * Constructs a monitor; nothing happens until {@linkcode LogMonitor.start}.
   *
   * @param options What to follow and what to look for.
   * @throws {TypeError} If a string pattern is empty (it would match every line).
   */
  constructor(options: LogMonitorOptions) {
    this.#opts = options;
    this.#path = resolve(options.path);
    this.#skipExisting = options.from === "end";
    this.#splitter = new LineSplitter({ maxLineLength: options.maxLineLength });
    this.#rules = rulesOf(options.actions);
    if (this.#rules.some(([, p]) => p === "")) {
      throw new TypeError(
        "Cannot use an empty log pattern: it would match every line",
      );
    }
  }

  /**
   * Starts following the file. Resolves once the first pass is done (the
   * starting position is taken); never rejects. Calling it again is a no-op.
   */
  start(): Promise<void> {
    if (this.#timer !== undefined || this.#closed) {
      return this.#pumping ?? Promise.resolve();
    }
    this.#timer = setInterval(() => {
      this.#ensureWatcher();
      this.#kick();
    }, this.#opts.pollIntervalMs ?? 1000);
    this.#ensureWatcher();
    this.#kick();
    return this.#pumping ?? Promise.resolve();
  }

  /** Stops watching and polling and closes the file. Safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#watcher?.close();
    this.#watcher = undefined;
    await this.#watching;
    await this.#pumping;
    this.#closeFile();
  }

  #ensureWatcher(): void {
    if (this.#watcher || this.#closed || this.#opts.watch === false) return;
    let watcher: Deno.FsWatcher;
    try {
      watcher = Deno.watchFs(dirname(this.#path), { recursive: false });
    } catch (error) {
      // Parent directory missing (normal for an optional log) or
      // unwatchable: polling covers it.
      if (error instanceof Deno.errors.NotFound) {
        log.debug("No log directory yet for {path}", { path: this.#path });
      } else this.#problem(`Cannot watch the log directory: ${error}`);
      return;
    }
    this.#watcher = watcher;
    this.#watching = (async () => {
      try {
        for await (const event of watcher) {
          if (event.flag === "rescan" || event.paths.includes(this.#path)) {
            this.#kick();
          }
        }
      } catch (error) {
        if (!this.#closed) this.#problem(`Log directory watch ended: ${error}`);
      }
      if (this.#watcher === watcher) this.#watcher = undefined;
    })();
  }

  // Coalesces triggers: one pass at a time, plus one more if asked meanwhile.
  #kick(): void {
    if (this.#closed) return;
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = (async () => {
      do {
        this.#again = false;
        try {
          await this.#pass();
        } catch (error) {
          this.#problem(`Cannot read the log file ${this.#path}: ${error}`);
        }
      } while (this.#again && !this.#closed);
      this.#pumping = undefined;
    })();
  }

  async #pass(): Promise<void> {
    let info: Deno.FileInfo | undefined;
    try {
      info = await Deno.stat(this.#path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    // Only content present at the very first look may be skipped.
    const skip = this.#skipExisting;
    this.#skipExisting = false;
    const rotated = this.#file &&
      (!info || info.ino !== this.#ino || info.dev !== this.#dev);
    if (rotated) {
      // The writer may still append to the old file until it reopens.
      await this.#drain();
      const last = this.#splitter.push(this.#decoder.decode());
      const partial = this.#splitter.flush();
      this.#match(partial === undefined ? last : [...last, partial]);
      this.#overlap = this.#tail;
      this.#closeFile();
      log.debug("Log file {path} was rotated or removed", { path: this.#path });
    }
    if (!info || this.#closed) return;
    if (!this.#file) {
      const file = await Deno.open(this.#path, { read: true });
      if (this.#closed) return file.close();
      const opened = await file.stat();
      this.#file = file;
      this.#ino = opened.ino;
      this.#dev = opened.dev;
      this.#offset = skip ? opened.size : await this.#copiedPrefix(file);
      this.#overlap = undefined;
      this.#lastProblem = "";
      this.#opts.onOpen?.();
    }
    const { size } = await this.#file.stat();
    if (size < this.#offset) {
      log.debug("Log file {path} was truncated", { path: this.#path });
      this.#offset = 0;
      this.#tail = new Uint8Array(0);
      this.#splitter.reset();
      this.#decoder = new TextDecoder("utf-8", { fatal: false });
    }
    await this.#drain();
  }

  /**
   * How many leading bytes of a file that replaced the followed one are a
   * copy of its end (log-tee rotates by writing the last 1 MB to a new
   * file and renaming it over the old one): those lines were read already.
   */
  async #copiedPrefix(file: Deno.FsFile): Promise<number> {
    const end = this.#overlap;
    if (!end || end.length === 0) return 0;
    const head = new Uint8Array(OVERLAP_SEARCH_BYTES);
    let n = 0;
    while (n < head.length) {
      const got = await file.read(head.subarray(n));
      if (got === null || got === 0) break;
      n += got;
    }
    const at = indexOfBytes(head.subarray(0, n), end);
    if (at === -1) return 0;
    log.debug("Log file {path} was rotated with a copy of its last {n} bytes", {
      path: this.#path,
      n: at + end.length,
    });
    return at + end.length;
  }

  // Reads the open file from the offset to its end, matching whole lines.
  async #drain(): Promise<void> {
    const file = this.#file;
    if (!file) return;
    await file.seek(this.#offset, Deno.SeekMode.Start);
    while (!this.#closed) {
      const n = await file.read(this.#buf);
      if (n === null || n === 0) break;
      this.#offset += n;
      const chunk = this.#buf.subarray(0, n);
      this.#keepTail(chunk);
      // A lone \r ends what a terminal shows (progress bars): a line break.
      // One at a chunk's end before the next one's \n gives an empty line.
      const text = this.#decoder.decode(chunk, STREAM).replace(LONE_CR, "\n");
      this.#match(this.#splitter.push(text));
    }
  }

  // The file's last OVERLAP_BYTES bytes read, to recognise a rotated copy.
  #keepTail(chunk: Uint8Array): void {
    if (chunk.length >= OVERLAP_BYTES) {
      this.#tail = chunk.slice(chunk.length - OVERLAP_BYTES);
      return;
    }
    const keep = Math.min(this.#tail.length, OVERLAP_BYTES - chunk.length);
    const tail = new Uint8Array(keep + chunk.length);
    tail.set(this.#tail.subarray(this.#tail.length - keep));
    tail.set(chunk, keep);
    this.#tail = tail;
  }

  #match(lines: string[]): void {
    for (const raw of lines) {
      const line = stripAnsi(raw);
      if (line === "") continue;
      const rule = matchRule(this.#rules, line);
      try {
        if (rule) {
          const [kind, p] = rule;
          const pattern = typeof p === "string" ? p : p.source;
          this.#opts.onEvent({ kind, line, pattern });
        }
        this.#opts.onLine?.(line);
      } catch (error) {
        log.error("Log event handler failed: {error}", { error });
      }
    }
  }

  #closeFile(): void {
    this.#file?.close();
    this.#file = undefined;
    this.#offset = 0;
    this.#tail = new Uint8Array(0);
    this.#splitter.reset();
    this.#decoder = new TextDecoder("utf-8", { fatal: false });
  }

  // Logs a problem once until it changes, so a 1 s poll does not spam.
  #problem(message: string): void {
    if (message === this.#lastProblem) return;
    this.#lastProblem = message;
    log.warn("{problem}", { problem: message });
  }
}
