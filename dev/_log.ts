/**
 * Model-server log files for the dev stand-ins: appends that never block an
 * HTTP answer, plus the timestamp formats the real servers print.
 *
 * @module
 */

/**
 * An append-only log file. {@linkcode LogFile.write} queues the lines and
 * returns at once; the writes happen in order in the background, each one an
 * `O_APPEND` write, so a tailer (and log rotation by rename) sees what it
 * would see with a real server. Without a path every call is a no-op.
 */
export class LogFile {
  #path: string | undefined;
  #tail: Promise<void> = Promise.resolve();

  /**
   * Creates the writer (nothing is opened until the first write).
   *
   * @param path file to append to; `undefined` disables logging.
   */
  constructor(path: string | undefined) {
    this.#path = path;
  }

  /** Queues `lines` (each gets a trailing newline). */
  write(...lines: string[]): void {
    const path = this.#path;
    if (path === undefined || lines.length === 0) return;
    const text = lines.map((l) => l + "\n").join("");
    this.#tail = this.#tail
      .then(() => Deno.writeTextFile(path, text, { append: true }))
      .catch(() => {/* a dev log must never break the server */});
  }

  /** Resolves once every queued line is on disk. */
  flush(): Promise<void> {
    return this.#tail;
  }
}

const pad = (n: number, width = 2): string => String(n).padStart(width, "0");

/** vLLM's logger time, `MM-DD HH:MM:SS` (local time). */
export function vllmTime(d: Date = new Date()): string {
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Python `logging`/supervisord time, `YYYY-MM-DD HH:MM:SS,mmm`. */
export function supervisorTime(d: Date = new Date()): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())},` +
    pad(d.getMilliseconds(), 3);
}

/** SGLang's bracketed time, `[YYYY-MM-DD HH:MM:SS]`. */
export function sglangTime(d: Date = new Date()): string {
  return `[${supervisorTime(d).slice(0, 19)}]`;
}

/** Rust `tracing` JSON time, RFC 3339 UTC with microseconds. */
export function tracingTime(d: Date = new Date()): string {
  return d.toISOString().replace("Z", "000Z");
}
