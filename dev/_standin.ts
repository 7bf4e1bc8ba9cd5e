/**
 * What the model-server stand-ins (OpenAI-compatible, TGI, ComfyUI) share:
 * the common options, the handle's counters, and the lifecycle of a model
 * server process — boot lines, a startup delay that ends in the ready lines
 * (or a failed load), a crash, a crash after N requests, and close — with
 * supervisord's own lines in their own file and the portal log as
 * base-image's log-tee writes it (colours, `\r` progress bars, rotation).
 *
 * @module
 */

import {
  LogFile,
  type LogTeeMode,
  supervisorExitedLine,
  supervisorSpawnLines,
} from "./_log.ts";
import { DevServer, type RequestScope } from "./_serve.ts";

/** Failure injection common to the stand-ins. */
export interface StandInFailures {
  /** Share of inference requests (0..1) that fail: answered 500 at once by
   * the OpenAI stand-in, 424 "Request failed during generation" by TGI, a job
   * ending `"status": "failed"` (execution error) by ComfyUI. */
  errorRate?: number;
  /** Crash (as the handle's `crash()`) once this many inference requests
   * have finished. */
  crashAfterRequests?: number;
  /** Fail to load: after `startupDelayMs`, log the server's load-failure
   * lines instead of the ready ones. The OpenAI and TGI stand-ins then stop
   * listening, as their process exits; ComfyUI's wrapper stays up with
   * `/health` 503 (`BACKENDS_READY_TIMEOUT`). */
  failStartup?: boolean;
}

/** Options common to the stand-ins. */
export interface StandInOptions {
  /** Port to bind on 127.0.0.1; 0 picks a free one. @default 0 */
  port?: number;
  /** File the server's log lines are appended to. @default none */
  logFile?: string;
  /** Time before the server is up: `/health` turns 200 and the ready lines
   * are logged. @default 0 */
  startupDelayMs?: number;
  /** supervisord's own log (Vast: `/var/log/supervisor/supervisord.log`):
   * `spawned:` and `success:` at start, `exited:` (supervisor 4.x, `WARN
   * ... not expected`) when the process crashes or fails to load. The
   * model log never gets these lines. @default none */
  supervisorLog?: string;
  /** The supervisord program name in those lines. @default per stand-in */
  program?: string;
  /** Write the log as base-image's log-tee does: `.old` rename at start,
   * level colours, a `\r` progress bar while loading, rotation by rename.
   * @default plain lines, never rotated */
  logTee?: LogTeeMode;
  /** Failure injection. */
  failures?: StandInFailures;
}

/** Handle of a running stand-in; `await using` closes it. */
export interface StandInServer extends AsyncDisposable {
  /** Base URL, `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Bound port. */
  readonly port: number;
  /** Inference requests seen, valid or not. */
  readonly requests: number;
  /** Requests whose client went away while queued or generating (noticed
   * for small payloads only: see `_serve.ts`). */
  readonly aborted: number;
  /** Last JSON body received on an inference route (`undefined` when it was
   * not JSON). */
  readonly lastBody: unknown;
  /** How many times the log was rotated (log-tee mode). */
  readonly logRotations: number;
  /** Logs the server's fatal lines, fails in-flight requests and stops
   * listening (connection refused). Resolves once the port is closed. */
  crash(): Promise<void>;
  /** Stops the server and flushes the log. Idempotent. */
  close(): Promise<void>;
}

/**
 * Base of the stand-ins. A subclass sets up its own state, then calls
 * {@linkcode StandIn.start} last in its constructor (so that nothing
 * listens when its setup throws); it answers requests in
 * {@linkcode StandIn.route} and reports them with the `count*` / `note*`
 * methods.
 */
export abstract class StandIn<O extends StandInOptions>
  implements StandInServer {
  /** The options the server was started with. */
  protected readonly opts: O;
  /** The server's log file. */
  protected readonly log: LogFile;
  /** supervisord's log file. */
  protected readonly supervisor: LogFile;
  #progress: ReturnType<typeof setInterval> | undefined;
  #exited = false;
  #http: DevServer | undefined;
  #ready = false;
  #startTimer: ReturnType<typeof setTimeout> | undefined;
  #finished = 0;
  /** Inference requests seen (read through {@linkcode StandInServer}). */
  requests = 0;
  /** Requests whose client went away. */
  aborted = 0;
  /** The latest inference request's body. */
  lastBody: unknown = undefined;

  /** Keeps the options; nothing listens before {@linkcode StandIn.start}. */
  constructor(opts: O) {
    this.opts = opts;
    this.log = new LogFile(
      opts.logFile,
      opts.logTee,
      (line) => this.formatLine(line),
    );
    this.supervisor = new LogFile(opts.supervisorLog);
  }

  /** The supervisord program name (`program`, else the stand-in's own). */
  protected get program(): string {
    return this.opts.program ?? this.defaultProgram;
  }

  /** How a log line is printed (the stand-in's output format). */
  protected formatLine(line: string): string {
    return line;
  }

  /** The program name of Vast's supervisord config for this server. */
  protected get defaultProgram(): string {
    return "model-server";
  }

  /** How many times the log was rotated (log-tee mode). */
  get logRotations(): number {
    return this.log.rotations;
  }

  get url(): string {
    return this.#listener.url;
  }
  get port(): number {
    return this.#listener.port;
  }

  /** `true` once startup is over and it did not fail. */
  protected get ready(): boolean {
    return this.#ready;
  }

  /** Resolves once every log line written so far is on disk. */
  async flushLog(): Promise<void> {
    await this.log.flush();
    await this.supervisor.flush();
  }

  /** The process ended: supervisord logs its exit (once). */
  protected noteExit(how = "exit status 1"): void {
    if (this.#exited) return;
    this.#exited = true;
    this.supervisor.write(supervisorExitedLine(this.program, how));
  }

  abstract crash(): Promise<void>;

  async close(): Promise<void> {
    clearTimeout(this.#startTimer);
    this.#endProgress();
    await this.#listener.stop();
    await this.log.flush();
    await this.supervisor.flush();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Answers one request. */
  protected abstract route(
    req: Request,
    scope: RequestScope,
  ): Promise<Response> | Response;

  /** Logs the ready lines (startup is over). */
  protected abstract logReady(): void;

  /** Startup failed (`failures.failStartup`): log it, and stop if the real
   * server's process would exit. */
  protected abstract failStartup(): void;

  /**
   * Starts listening (requests go to {@linkcode StandIn.route}), logs the
   * boot lines for the bound port, then after `startupDelayMs` (at once
   * without one) ends startup: {@linkcode StandIn.failStartup} under
   * `failures.failStartup`, else ready and {@linkcode StandIn.logReady}.
   */
  protected start(bootLines: (port: number) => readonly string[]): void {
    this.#http = new DevServer(
      this.opts.port ?? 0,
      (req, scope) => this.route(req, scope),
    );
    this.supervisor.write(...supervisorSpawnLines(this.program, Deno.pid));
    this.log.write(...bootLines(this.port));
    const delay = this.opts.startupDelayMs ?? 0;
    if (this.log.tty && delay > 0) this.#startProgress();
    if (delay > 0) {
      this.#startTimer = setTimeout(() => this.#finishStartup(), delay);
    } else this.#finishStartup();
  }

  /** Ends startup now, before `startupDelayMs` is over; no-op once over. */
  protected endStartupNow(): void {
    if (this.#startTimer === undefined) return;
    clearTimeout(this.#startTimer);
    this.#finishStartup();
  }

  /** The body of `crash()`: logs `fatalLines` unless already stopped, then
   * closes. */
  protected crashWith(fatalLines: readonly string[]): Promise<void> {
    if (!this.#listener.stopped) {
      this.log.write(...fatalLines);
      this.noteExit();
    }
    return this.close();
  }

  /** Counts an inference request. */
  protected countRequest(): void {
    this.requests++;
  }

  /** Keeps the body of the latest inference request (for `lastBody`). */
  protected noteBody(body: unknown): void {
    this.lastBody = body;
  }

  /** `true` for a request that `failures.errorRate` picks to fail. */
  protected injectFailure(): boolean {
    const rate = this.opts.failures?.errorRate ?? 0;
    return rate > 0 && Math.random() < rate;
  }

  /** Counts a request whose client went away. */
  protected countAborted(): void {
    this.aborted++;
  }

  /** Counts a finished inference request (answered in any way), crashing
   * when `failures.crashAfterRequests` is reached. */
  protected countFinished(): void {
    this.#finished++;
    const limit = this.opts.failures?.crashAfterRequests;
    if (limit !== undefined && this.#finished === limit) void this.crash();
  }

  get #listener(): DevServer {
    if (this.#http === undefined) throw new Error("stand-in not started");
    return this.#http;
  }

  // tqdm on a pty while the weights load: a redraw every 20 ms, each one
  // starting with \r, the line ended once loading is over.
  #startProgress(): void {
    let step = 0;
    this.#progress = setInterval(() => {
      step++;
      const pct = String(step % 100).padStart(3);
      this.log.writeRaw(
        `\rLoading safetensors checkpoint shards: ${pct}% Completed | ${
          "█".repeat(step % 40).padEnd(40)
        } | ${step}/∞ [00:01<00:03,  1.02s/it]`,
      );
    }, 20);
  }

  #endProgress(): void {
    if (this.#progress === undefined) return;
    clearInterval(this.#progress);
    this.#progress = undefined;
    this.log.writeRaw("\n");
  }

  #finishStartup(): void {
    this.#startTimer = undefined;
    this.#endProgress();
    if (this.opts.failures?.failStartup) {
      this.failStartup();
      return;
    }
    this.#ready = true;
    this.logReady();
  }
}

/** Creates a stand-in and resolves once its first log lines are written. */
export async function launch<S extends StandIn<StandInOptions>>(
  create: () => S,
): Promise<S> {
  const server = create();
  await server.flushLog();
  return server;
}
