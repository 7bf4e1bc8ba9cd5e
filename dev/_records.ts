/**
 * Recorded request bodies with "wait until one matches", for the
 * control-plane stand-in.
 *
 * @module
 */
import { deadline } from "../lib/std/async.ts";

/** A request body the control plane received, with its arrival time. */
export interface Recorded {
  /** Parsed JSON body (`undefined` if it was not JSON). */
  body: unknown;
  /** The body as sent (JSON.parse rounds integers beyond 2^53). */
  text: string;
  /** The request headers. */
  headers: Headers;
  /** Arrival, `Date.now()` milliseconds. */
  at: number;
  /** What the control plane found wrong with the body, if anything. */
  problems?: { field: string; error: string }[];
}

/** Which record list `waitFor` watches. */
export type RecordKind = "status" | "delete" | "route";

interface Watcher {
  kind: RecordKind;
  predicate: (body: unknown) => boolean;
  resolve: (r: Recorded) => void;
  cancel: () => void;
}

/** Three record lists plus waiters on them. */
export class Recorder {
  /** `/worker_status/` bodies. */
  readonly status: Recorded[] = [];
  /** `/delete_requests/` bodies. */
  readonly delete: Recorded[] = [];
  /** `/route/` bodies. */
  readonly route: Recorded[] = [];
  #watchers = new Set<Watcher>();

  /** Records `rec` and wakes matching waiters. */
  add(kind: RecordKind, rec: Recorded): void {
    this[kind].push(rec);
    for (const w of [...this.#watchers]) {
      if (w.kind === kind && w.predicate(rec.body)) w.resolve(rec);
    }
  }

  /**
   * The first record of `kind` (present or future) matching `predicate`;
   * rejects after `timeoutMs` or on {@linkcode cancelWaits}.
   */
  async waitFor(
    kind: RecordKind,
    predicate: (body: unknown) => boolean = () => true,
    timeoutMs = 5000,
  ): Promise<Recorded> {
    const found = this[kind].find((r) => predicate(r.body));
    if (found) return found;
    const match = Promise.withResolvers<Recorded>();
    const watcher: Watcher = {
      kind,
      predicate,
      resolve: match.resolve,
      cancel: () =>
        match.reject(
          new Error(`control plane closed while waiting for ${kind}`),
        ),
    };
    this.#watchers.add(watcher);
    try {
      return await deadline(match.promise, timeoutMs);
    } catch (e) {
      const late = e instanceof DOMException && e.name === "TimeoutError";
      throw late
        ? new Error(`no matching ${kind} record within ${timeoutMs} ms`)
        : e;
    } finally {
      this.#watchers.delete(watcher);
    }
  }

  /** Rejects every pending {@linkcode waitFor}. */
  cancelWaits(): void {
    for (const w of [...this.#watchers]) w.cancel();
  }
}
