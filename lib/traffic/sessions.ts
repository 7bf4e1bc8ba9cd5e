/**
 * Sessions: a client keeps one worker for a series of requests, as the
 * Python SDK's `endpoint.session()` does. The session's record in the
 * ledger carries its cost as workload while it lives.
 *
 * Longer than most modules: the store, its reaper and the `on_close_route` rules that keep its callback on the model server.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Ledger, RequestInfo, RequestRecord } from "./ledger.ts";

const log = getLogger(["edgeworker", "sessions"]);
/** Longest `on_close_route` accepted, in characters. */
export const MAX_ON_CLOSE_ROUTE_LENGTH = 2048;
/** Largest `on_close_payload` accepted, in bytes of JSON. */
export const MAX_ON_CLOSE_PAYLOAD_BYTES = 64 * 1024;
// Tab, newline and the other C0 controls, DEL: the URL parser drops some
// of them, so "/\t/host" would become "//host".
// deno-lint-ignore no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const ID_CHARS =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** One open session. */
export interface OpenSession {
  readonly id: string;
  readonly authData: Record<string, unknown>;
  /** Seconds added to the expiration by each request. */
  readonly lifetime: number;
  /** Unix seconds. */
  expiration: number;
  readonly createdAt: number;
  readonly onCloseRoute: string | null;
  readonly onClosePayload: unknown;
  readonly record: RequestRecord;
  /** Aborts the session's requests in flight when it closes. */
  readonly inFlight: Set<AbortController>;
}

/** What creating a session needs. */
export interface SessionRequest {
  /** The creating request (exact `request_idx`, `reqnum`, cost as workload). */
  info: RequestInfo;
  authData: Record<string, unknown>;
  lifetime: number;
  onCloseRoute: string | null;
  onClosePayload: unknown;
}

/** Options of {@linkcode SessionStore}. */
export interface SessionStoreOptions {
  ledger: Ledger;
  /** Most open sessions; 0 means unlimited. */
  maxSessions: number;
  /** The model server: `on_close_route` paths go to its origin only. */
  modelServerUrl: string;
  /** @default {5000} */
  reapIntervalMs?: number;
  /** How long an `on_close_route` call may take. @default {10000} */
  onCloseTimeoutMs?: number;
  /** Clock in unix ms, for tests. */
  now?: () => number;
}

/** Outcome of {@linkcode SessionStore.authorize}. */
export type SessionAccess =
  | { ok: true; session: OpenSession }
  | { ok: false; missing: true; closed: boolean }
  | { ok: false; missing: false; closed: false };

/**
 * Deep equality of JSON values (`session_auth` must equal `auth_data`; a
 * resumed stream's `auth_data` its request's).
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || !a || !b) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) =>
    Object.hasOwn(b, k) &&
    jsonEqual(
      (a as Record<string, unknown>)[k],
      (b as Record<string, unknown>)[k],
    )
  );
}

/**
 * Why `route` is not acceptable as an `on_close_route`, or undefined. Only
 * a path is: the callback fires on expiry alone, so a host in it would let
 * anyone make the worker POST chosen JSON anywhere.
 */
export function onCloseRouteProblem(route: string): string | undefined {
  if (route.length > MAX_ON_CLOSE_ROUTE_LENGTH) {
    return `longer than ${MAX_ON_CLOSE_ROUTE_LENGTH} characters`;
  }
  if (!route.startsWith("/")) {
    return "must be a path starting with / (no scheme or host)";
  }
  if (route.startsWith("//")) return "must not start with // (a host)";
  if (route.includes("\\")) return "must not contain a backslash";
  if (route.includes("@")) return "must not contain @";
  if (CONTROL_CHARS.test(route)) return "must not contain control characters";
  if (onCloseUrl(route, "http://model.invalid") === undefined) {
    return "must stay on the model server";
  }
  return undefined;
}

/** `route` on `origin`; undefined when it would leave that origin. */
export function onCloseUrl(route: string, origin: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(route, origin);
  } catch {
    return undefined;
  }
  return url.origin === new URL(origin).origin ? url : undefined;
}

/** Open sessions, their expiry reaper and their close callbacks. */
export class SessionStore {
  #sessions = new Map<string, OpenSession>();
  #closed = new Set<string>();
  #ledger: Ledger;
  #max: number;
  #origin: string;
  #onCloseTimeoutMs: number;
  #now: () => number;
  #reaper: ReturnType<typeof setInterval>;
  #callbacks = new Set<Promise<void>>();

  /** Creates the store and starts its expiry reaper. */
  constructor(options: SessionStoreOptions) {
    this.#ledger = options.ledger;
    this.#max = options.maxSessions;
    this.#origin = new URL(options.modelServerUrl).origin;
    this.#onCloseTimeoutMs = options.onCloseTimeoutMs ?? 10_000;
    this.#now = options.now ?? Date.now;
    this.#reaper = setInterval(
      () => this.reap(),
      options.reapIntervalMs ?? 5000,
    );
  }

  /** Open sessions. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Whether a new session would exceed the limit. */
  get full(): boolean {
    return this.#max > 0 && this.#sessions.size >= this.#max;
  }

  /** Opens a session; undefined when the limit is reached. */
  create(request: SessionRequest): OpenSession | undefined {
    if (this.full) return undefined;
    const now = this.#now() / 1000;
    const auth = request.authData;
    let id = randomId();
    while (this.#sessions.has(id)) id = randomId();
    const record = this.#ledger.open({
      ...request.info,
      sessionId: id,
      kind: "session",
    });
    this.#ledger.start(record);
    const session: OpenSession = {
      id,
      authData: auth,
      lifetime: request.lifetime,
      expiration: now + request.lifetime,
      createdAt: now,
      onCloseRoute: request.onCloseRoute,
      onClosePayload: request.onClosePayload,
      record,
      inFlight: new Set(),
    };
    this.#sessions.set(id, session);
    log.info("Session {id} opened for {lifetime}s", {
      id,
      lifetime: request.lifetime,
    });
    return session;
  }

  /** A live session, or undefined (unknown or expired). */
  get(id: string): OpenSession | undefined {
    const s = this.#sessions.get(id);
    if (s && s.expiration * 1000 <= this.#now()) {
      this.close(id, "expired");
      return undefined;
    }
    return s;
  }

  /**
   * The session `id` if `auth` is the `auth_data` it was created with (a
   * session's requests carry it instead of a fresh signature). `missing`
   * tells whether it was closed recently or never existed.
   */
  authorize(id: string, auth: unknown): SessionAccess {
    const session = this.get(id);
    if (!session) {
      return { ok: false, missing: true, closed: this.wasClosed(id) };
    }
    if (!jsonEqual(session.authData, auth)) {
      return { ok: false, missing: false, closed: false };
    }
    return { ok: true, session };
  }

  /** Whether `id` was closed recently (for 410 on a second end). */
  wasClosed(id: string): boolean {
    return this.#closed.has(id);
  }

  /** Extends a session by its lifetime, as each request does. */
  touch(session: OpenSession): void {
    session.expiration += session.lifetime;
  }

  /**
   * Closes a session: aborts its requests in flight, fires its
   * `on_close_route` once (best effort), and ends its ledger record.
   */
  close(id: string, reason: string): boolean {
    const s = this.#sessions.get(id);
    if (!s) return false;
    this.#sessions.delete(id);
    this.#closed.add(id);
    if (this.#closed.size > 10_000) {
      this.#closed.delete(this.#closed.values().next().value!);
    }
    for (const c of s.inFlight) c.abort(new Error(`session ${reason}`));
    s.inFlight.clear();
    this.#ledger.finish(s.record, "success", 200, `session ${reason}`);
    log.info("Session {id} closed: {reason}", { id, reason });
    if (s.onCloseRoute) {
      const p = this.#callOnClose(s).finally(() => this.#callbacks.delete(p));
      this.#callbacks.add(p);
    }
    return true;
  }

  /** Closes every expired session. */
  reap(): void {
    const now = this.#now();
    for (const s of [...this.#sessions.values()]) {
      if (s.expiration * 1000 <= now) this.close(s.id, "expired");
    }
  }

  /** Closes all sessions and waits for their callbacks. */
  async shutdown(): Promise<void> {
    clearInterval(this.#reaper);
    for (const id of [...this.#sessions.keys()]) this.close(id, "shutdown");
    await Promise.allSettled([...this.#callbacks]);
  }

  // Best effort, bounded in time, never following a redirect: a model
  // server answering 3xx must not turn the call into one to another host.
  async #callOnClose(s: OpenSession): Promise<void> {
    const route = s.onCloseRoute!;
    const url = onCloseUrl(route, this.#origin);
    if (!url) {
      log.warn("on_close_route {route} leaves the model server: not called", {
        route,
      });
      return;
    }
    const payload = s.onClosePayload;
    const body: Record<string, unknown> =
      payload && typeof payload === "object" && !Array.isArray(payload)
        ? { ...payload as Record<string, unknown> }
        : payload === null || payload === undefined
        ? {}
        : { payload };
    body.session_id ??= s.id;
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        // A Blob: Deno's fetch resends a string body once when a reused
        // connection closes unanswered, even after the server took it.
        body: new Blob([JSON.stringify(body)]),
        redirect: "manual",
        signal: AbortSignal.timeout(this.#onCloseTimeoutMs),
      });
      await res.body?.cancel();
      if (res.status >= 300 && res.status < 400) {
        log.warn("on_close_route {url} answered {status}: not followed", {
          url: url.href,
          status: res.status,
        });
      } else if (!res.ok) {
        log.warn("on_close_route {url} answered {status}", {
          url: url.href,
          status: res.status,
        });
      }
    } catch (e) {
      log.warn("on_close_route {url} failed: {error}", {
        url: url.href,
        error: e instanceof Error ? e.message : String(e),
      });
    }
  }
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(13));
  let id = "";
  for (const b of bytes) id += ID_CHARS[b % ID_CHARS.length];
  return id;
}
