/**
 * Recorded request bodies with "wait until one matches", for the
 * control-plane stand-in.
 *
 * @module
 */

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
  waitFor(
    kind: RecordKind,
    predicate: (body: unknown) => boolean = () => true,
    timeoutMs = 5000,
  ): Promise<Recorded> {
    const found = this[kind].find((r) => predicate(r.body));
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.#watchers.delete(watcher);
      };
      const watcher: Watcher = {
        kind,
        predicate,
        resolve: (r) => {
          finish();
          resolve(r);
        },
        cancel: () => {
          finish();
          reject(new Error(`control plane closed while waiting for ${kind}`));
        },
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no matching ${kind} record within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#watchers.add(watcher);
    });
  }

  /** Rejects every pending {@linkcode waitFor}. */
  cancelWaits(): void {
    for (const w of [...this.#watchers]) w.cancel();
  }
}
