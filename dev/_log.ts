/**
 * Model-server log files for the dev stand-ins: appends that never block an
 * HTTP answer, the timestamp formats the real servers print, supervisord's
 * own lines, and the portal log as Vast's `log-tee` writes it.
 *
 * @module
 */

/**
 * The portal log as vast-ai/base-image a7552d1 writes it: the program runs
 * in a pty (`unbuffer -p`, `utils/pty.sh`), so its ANSI colours and `\r`
 * progress bars reach the file unchanged; `utils/logging.sh` renames an
 * existing log to `<log>.old` at each program start; `/usr/local/bin/log-tee`
 * checks the size every 512 KiB written and, above 5 MiB, writes the last
 * 1 MiB (from its first whole line) to `<log>.rotate` and `os.replace`s it
 * over the log (sizes here can be made smaller for tests).
 */
export interface LogTeeMode {
  /** Which upstream behaviour is imitated. */
  mode: "log-tee@base-image-a7552d1";
  /** Rotate above this size. @default 5 MiB (`_LOG_MAX_SIZE`) */
  maxBytes?: number;
  /** Bytes kept by a rotation. @default 1 MiB (`_LOG_KEEP_SIZE`) */
  keepBytes?: number;
  /** Size checked after this many bytes written. @default 512 KiB (`_ROTATE_CHECK`) */
  checkBytes?: number;
}

/** The {@linkcode LogTeeMode} of base-image a7552d1, with its sizes. */
export const LOG_TEE_A7552D1: Required<LogTeeMode> = {
  mode: "log-tee@base-image-a7552d1",
  maxBytes: 5 * 1024 * 1024,
  keepBytes: 1024 * 1024,
  checkBytes: 512 * 1024,
};

const encoder = new TextEncoder();

/**
 * An append-only log file. {@linkcode LogFile.write} queues the lines and
 * returns at once; the writes happen in order in the background, each one an
 * `O_APPEND` write, so a tailer (and log rotation by rename) sees what it
 * would see with a real server. Without a path every call is a no-op. With
 * a {@linkcode LogTeeMode} it renames an existing file to `.old` at once,
 * colours level words as a tty shows them and rotates as log-tee does.
 */
export class LogFile {
  #path: string | undefined;
  #tail: Promise<void> = Promise.resolve();
  #tee: Required<LogTeeMode> | undefined;
  #format: (line: string) => string;
  #sinceCheck = 0;
  #rotations = 0;

  /**
   * Creates the writer (nothing is opened until the first write).
   *
   * @param path file to append to; `undefined` disables logging.
   * @param tee write as log-tee does (see {@linkcode LogTeeMode}).
   * @param format rewrites each line before it is written.
   */
  constructor(
    path: string | undefined,
    tee?: LogTeeMode,
    format: (line: string) => string = (line) => line,
  ) {
    this.#path = path;
    this.#format = format;
    if (tee && path !== undefined) {
      this.#tee = { ...LOG_TEE_A7552D1, ...tee };
      // logging.sh: `[[ -f "$logfile" ]] && mv "${logfile}" "${logfile}.old"`
      try {
        Deno.renameSync(path, `${path}.old`);
      } catch { /* no earlier log */ }
    }
  }

  /** Whether the log is written as a pty shows it (colours, `\r`). */
  get tty(): boolean {
    return this.#tee !== undefined;
  }

  /** How many times log-tee's rotation replaced the file. */
  get rotations(): number {
    return this.#rotations;
  }

  /** Queues `lines` (each gets a trailing newline; coloured on a tty). */
  write(...lines: string[]): void {
    if (lines.length === 0) return;
    const formatted = lines.map(this.#format);
    const shown = this.#tee ? formatted.map(colourLevel) : formatted;
    this.writeRaw(shown.map((l) => l + "\n").join(""));
  }

  /** Queues `text` exactly as given (e.g. a `\r` progress bar). */
  writeRaw(text: string): void {
    const path = this.#path;
    if (path === undefined || text === "") return;
    const bytes = encoder.encode(text);
    this.#tail = this.#tail
      .then(async () => {
        await Deno.writeFile(path, bytes, { append: true });
        if (this.#tee) await this.#maybeRotate(path, bytes.length);
      })
      .catch(() => {/* a dev log must never break the server */});
  }

  /** Resolves once every queued line is on disk. */
  flush(): Promise<void> {
    return this.#tail;
  }

  // log-tee's `_rotate_fd`: keep the last keepBytes from a whole line on,
  // written to `<path>.rotate`, then renamed over the log.
  async #maybeRotate(path: string, written: number): Promise<void> {
    const tee = this.#tee!;
    this.#sinceCheck += written;
    if (this.#sinceCheck < tee.checkBytes) return;
    this.#sinceCheck = 0;
    const { size } = await Deno.stat(path);
    if (size <= tee.maxBytes) return;
    const file = await Deno.open(path, { read: true });
    let tail: Uint8Array;
    try {
      await file.seek(Math.max(0, size - tee.keepBytes), Deno.SeekMode.Start);
      tail = new Uint8Array(Math.min(size, tee.keepBytes));
      let n = 0;
      while (n < tail.length) {
        const got = await file.read(tail.subarray(n));
        if (got === null) break;
        n += got;
      }
      tail = tail.subarray(0, n);
    } finally {
      file.close();
    }
    const nl = tail.indexOf(0x0a);
    if (nl >= 0) tail = tail.subarray(nl + 1);
    await Deno.writeFile(`${path}.rotate`, tail);
    await Deno.rename(`${path}.rotate`, path);
    this.#rotations++;
  }
}

const LEVEL_COLOURS: Record<string, string> = {
  DEBUG: "36",
  INFO: "32",
  WARNING: "33",
  WARN: "33",
  ERROR: "31",
  CRITICAL: "1;31",
};

/**
 * A line as a colouring logger prints it on a tty: the leading level word
 * in its colour (uvicorn's `click.style(levelname, fg=...)` gives
 * `\x1b[32mINFO\x1b[0m:`; vLLM's and TGI's levels likewise).
 */
export function colourLevel(line: string): string {
  return line.replace(
    /^(\s*)(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)\b/,
    (_, space: string, level: string) =>
      `${space}\x1b[${LEVEL_COLOURS[level]}m${level}\x1b[0m`,
  );
}

/**
 * supervisord's line for `program` ending (supervisor 4.x
 * `process.py finish()`: an unexpected exit is logged at `WARN`, an
 * expected one at `INFO`).
 */
export function supervisorExitedLine(
  program: string,
  how = "exit status 1",
  expected = false,
): string {
  return `${supervisorTime()} ${
    expected ? "INFO" : "WARN"
  } exited: ${program} (${how}; ${expected ? "expected" : "not expected"})`;
}

/** supervisord's lines as it starts `program` (`startsecs=0` on Vast). */
export function supervisorSpawnLines(program: string, pid: number): string[] {
  return [
    `${supervisorTime()} INFO spawned: '${program}' with pid ${pid}`,
    `${supervisorTime()} INFO success: ${program} entered RUNNING state, process has stayed up for > than 0 seconds (startsecs)`,
  ];
}

/** supervisord giving up on `program` (no restart follows). */
export function supervisorGaveUpLine(program: string): string {
  return `${supervisorTime()} INFO gave up: ${program} entered FATAL state, too many start retries too quickly`;
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
