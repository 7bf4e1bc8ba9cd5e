/**
 * A stand-in for Vast's serverless control plane (the autoscaler at
 * `REPORT_ADDR`): `GET /pubkey/`, `POST /route/` with real RSA-2048
 * signatures, and `POST /worker_status/` / `POST /delete_requests/`, whose
 * bodies it checks field by field and keeps. Workers register by
 * reporting; `/route/` picks among the ready ones by load and `max_perf`
 * (see `_fleet.ts`) and answers "waiting" while none can take the request.
 * `GET /` is a live page of the workers, the last requests and a chart of
 * load and throughput (`GET /api/view` is its JSON).
 *
 * For tests, replies and delays can be set to simulate an outage, a slow
 * autoscaler, reports lost on the way (never answered), a key server that
 * is slow to answer, or an autoscaler still looking for a worker
 * (`waitsPerRequest`); a fixed `workerUrl` routes everything to one URL.
 *
 * Longer than most modules: one stand-in with every knob tests turn; the
 * routing rule is `_fleet.ts`, the report checks `_wire_check.ts`, the page
 * `lib/http/live_page.ts`.
 *
 * @example
 * ```ts
 * const cp = await startControlPlane({ workerUrl: "http://127.0.0.1:3000" });
 * const auth = await (await fetch(`${cp.url}/route/`, {
 *   method: "POST",
 *   body: JSON.stringify({ endpoint: "demo", api_key: "k", cost: 100 }),
 * })).json(); // { __request_id, cost, endpoint, reqnum, request_idx, signature, url }
 * await cp.close();
 * ```
 *
 * @module
 */

import { sleep } from "./_async.ts";
import { pythonFloatRepr } from "../lib/auth/python_json.ts";
import { type Recorded, Recorder, type RecordKind } from "./_records.ts";
import { DevServer, isObject, json, parseJson } from "./_serve.ts";
import { Fleet, type StatusFigures } from "./_fleet.ts";
import {
  checkDeleteRequests,
  checkWorkerStatus,
  type Problem,
} from "./_wire_check.ts";
import { livePage } from "../lib/http/live_page.ts";
import type { LiveReport, LiveView } from "../lib/metrics/live_view.ts";
import {
  legacySignatureMessage,
  publicKeyPem,
  RSA_ALGORITHM,
  signText,
  urlSignatureMessage,
} from "./_signing.ts";

export { legacySignatureMessage, urlSignatureMessage } from "./_signing.ts";
export type { Recorded, RecordKind } from "./_records.ts";
export type { Problem } from "./_wire_check.ts";

/** What the control plane serves, by path. */
type Kind = "status" | "delete" | "pubkey" | "route";

const ROUTES = new Map<string, Kind>([
  ["/pubkey/", "pubkey"],
  ["/route/", "route"],
  ["/worker_status/", "status"],
  ["/delete_requests/", "delete"],
]);

/** Options of {@linkcode startControlPlane}. */
export interface ControlPlaneOptions {
  /** Port to bind; 0 picks a free one. @default 0 */
  port?: number;
  /** Address to bind. @default "127.0.0.1" */
  hostname?: string;
  /**
   * One URL `/route/` hands out whatever the reports say; without it
   * `/route/` picks among the workers that report (and answers "waiting"
   * while none is ready).
   */
  workerUrl?: string;
  /**
   * Answer 422 (naming the fields) to a report that is not what a Python
   * worker sends; otherwise such a report is accepted, and its problems
   * are kept in its record. @default false
   */
  strict?: boolean;
  /** The endpoint's `max_queue_time` for routing, seconds. @default 30 */
  maxQueueTime?: number;
  /** A worker silent this long is not routed to. @default 30000 */
  staleMs?: number;
  /** Heading of the live page. @default "edgeworker control plane" */
  title?: string;
  /** Most records kept per kind (oldest dropped). @default Infinity */
  historyLimit?: number;
  /** Called with each report whose body had problems, as it arrives. */
  onInvalid?: (
    kind: "status" | "delete",
    record: Recorded & { problems: Problem[] },
  ) => void;
  /** Which message the route signature covers. @default "url" */
  signatureFormat?: "url" | "legacy";
  /** If set, `/route/` answers 401 unless `api_key` equals it. */
  apiKey?: string;
  /** Reuse a key pair (key generation takes a moment). @default a new one */
  keyPair?: CryptoKeyPair;
  /**
   * `/route/` answers "waiting" this many times to each new request (one
   * without a `request_idx`) before routing it, as while the autoscaler
   * looks for a worker; `Infinity` never routes. @default 0
   */
  waitsPerRequest?: number;
}

/** A canned answer: status and JSON (or plain-text) body. */
export interface Reply {
  /** HTTP status. @default 200 */
  status?: number;
  /** JSON body. @default {"success": true} (or `{"error": ...}` for >= 400) */
  body?: unknown;
  /** A plain-text body instead of `body`. @default none */
  text?: string;
  /**
   * Lost on the way: no answer ever comes (the caller's try times out); a
   * report's body goes to `lostReports`, not the processed records.
   * @default false
   */
  lost?: boolean;
}

/**
 * What a route answers: a fixed {@linkcode Reply}, or one picked per
 * request from its 1-based number on that route (a scripted sequence; it
 * may wait first). `undefined` is the normal answer.
 */
export type ReplySource =
  | Reply
  | ((n: number) => Reply | undefined | Promise<Reply | undefined>);

/** One request the control plane received, on any path. */
export interface RequestLine {
  method: string;
  path: string;
  /** Arrival, `Date.now()` milliseconds. */
  at: number;
}

/** Handle of a running control-plane stand-in; `await using` closes it. */
export interface ControlPlane extends AsyncDisposable {
  /** Base URL (what the worker's `REPORT_ADDR` should be). */
  readonly url: string;
  /** Bound port. */
  readonly port: number;
  /** The served public key (SPKI PEM). */
  readonly publicKeyPem: string;
  /** Bodies POSTed to `/worker_status/`, in arrival order. */
  readonly statusReports: Recorded[];
  /** Bodies POSTed to `/delete_requests/`, in arrival order. */
  readonly deleteReports: Recorded[];
  /** Bodies POSTed to `/route/`, in arrival order. */
  readonly routeRequests: Recorded[];
  /** Report bodies received while the reply was `lost` (never processed). */
  readonly lostReports: {
    readonly status: Recorded[];
    readonly delete: Recorded[];
  };
  /** Number of `GET /pubkey/` requests. */
  readonly pubkeyFetches: number;
  /** Every request received, in arrival order. */
  readonly requests: readonly RequestLine[];
  /** Reports whose body had problems (each record's `problems`). */
  readonly invalidReports: readonly (Recorded & { problems: Problem[] })[];
  /** Workers that are ready to be routed to now. */
  readonly readyWorkers: number;
  /** Base64 RSA-PKCS1v15-SHA256 signature of `message` with the served key. */
  sign(message: string): Promise<string>;
  /** Sets (or clears) the worker URL `/route/` hands out. */
  setWorkerUrl(url: string | undefined): void;
  /** `false` makes `/route/` answer "waiting" even with a worker URL. */
  setReady(ready: boolean): void;
  /** Answer for `/worker_status/` (`undefined` restores 200). */
  setStatusReply(reply: ReplySource | undefined): void;
  /** Answer for `/delete_requests/` (`undefined` restores 200). */
  setDeleteReply(reply: ReplySource | undefined): void;
  /** Answer for `/pubkey/` (`undefined` restores the PEM). */
  setPubkeyReply(reply: ReplySource | undefined): void;
  /** Answer for `/route/` instead of routing (`undefined` restores it). */
  setRouteReply(reply: ReplySource | undefined): void;
  /** Delay before answering `/worker_status/` and `/delete_requests/`. */
  setDelayMs(ms: number): void;
  /**
   * Resolves with the first record of `kind` (already received or arriving
   * later) whose body satisfies `predicate`; rejects after `timeoutMs`.
   */
  waitFor(
    kind: RecordKind,
    predicate?: (body: unknown) => boolean,
    timeoutMs?: number,
  ): Promise<Recorded>;
  /** Stops the server (pending delays end at once). Idempotent. */
  close(): Promise<void>;
}

/** Starts the control plane; resolves once its key exists and it listens. */
export async function startControlPlane(
  options: ControlPlaneOptions = {},
): Promise<ControlPlane> {
  const keys = options.keyPair ??
    await crypto.subtle.generateKey(RSA_ALGORITHM, true, [
      "sign",
      "verify",
    ]) as CryptoKeyPair;
  return new ControlPlaneStandIn(
    options,
    keys,
    await publicKeyPem(keys.publicKey),
  );
}

class ControlPlaneStandIn implements ControlPlane {
  #records = new Recorder();
  readonly publicKeyPem: string;
  #opts: ControlPlaneOptions;
  #key: CryptoKey;
  #http: DevServer;
  #workerUrl: string | undefined;
  #ready = true;
  #replies: Partial<Record<Kind, ReplySource>> = {};
  #counts: Record<Kind, number> = { status: 0, delete: 0, pubkey: 0, route: 0 };
  #waitsLeft = new Map<number, number>();
  #delayMs = 0;
  #reqnum = 0;
  #requestIdx = 0;
  #fleet: Fleet;
  #page: string;
  /** request_idx answered "waiting", by when: the global queue. */
  #waitingSince = new Map<number, number>();
  readonly requests: RequestLine[] = [];
  readonly invalidReports: (Recorded & { problems: Problem[] })[] = [];
  readonly lostReports = {
    status: [] as Recorded[],
    delete: [] as Recorded[],
  };

  constructor(opts: ControlPlaneOptions, keys: CryptoKeyPair, pem: string) {
    this.#opts = opts;
    this.#key = keys.privateKey;
    this.publicKeyPem = pem;
    this.#workerUrl = opts.workerUrl;
    this.#fleet = new Fleet({
      maxQueueTime: opts.maxQueueTime,
      staleMs: opts.staleMs,
    });
    this.#page = livePage({
      title: opts.title ?? "edgeworker control plane",
      dataUrl: "api/view",
    });
    this.#http = new DevServer(
      opts.port ?? 0,
      (req) => this.#route(req),
      opts.hostname,
    );
  }

  get url(): string {
    return this.#http.url;
  }
  get port(): number {
    return this.#http.port;
  }
  get statusReports(): Recorded[] {
    return this.#records.status;
  }
  get deleteReports(): Recorded[] {
    return this.#records.delete;
  }
  get routeRequests(): Recorded[] {
    return this.#records.route;
  }
  get pubkeyFetches(): number {
    return this.#counts.pubkey;
  }
  get readyWorkers(): number {
    return this.#fleet.readyCount;
  }

  sign(message: string): Promise<string> {
    return signText(this.#key, message);
  }
  setWorkerUrl(url: string | undefined): void {
    this.#workerUrl = url;
  }
  setReady(ready: boolean): void {
    this.#ready = ready;
  }
  setStatusReply(reply: ReplySource | undefined): void {
    this.#replies.status = reply;
  }
  setDeleteReply(reply: ReplySource | undefined): void {
    this.#replies.delete = reply;
  }
  setPubkeyReply(reply: ReplySource | undefined): void {
    this.#replies.pubkey = reply;
  }
  setRouteReply(reply: ReplySource | undefined): void {
    this.#replies.route = reply;
  }
  setDelayMs(ms: number): void {
    this.#delayMs = ms;
  }

  waitFor(
    kind: RecordKind,
    predicate?: (body: unknown) => boolean,
    timeoutMs?: number,
  ): Promise<Recorded> {
    return this.#records.waitFor(kind, predicate, timeoutMs);
  }

  close(): Promise<void> {
    this.#records.cancelWaits();
    return this.#http.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #route(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    this.requests.push({ method: req.method, path, at: Date.now() });
    this.#trim(this.requests);
    if (req.method === "GET" && (path === "/" || path === "/api/view")) {
      return path === "/"
        ? new Response(this.#page, {
          headers: { "content-type": "text/html; charset=utf-8" },
        })
        : json(this.#view());
    }
    const kind = ROUTES.get(path);
    if (kind === undefined) return json({ error: "not found" }, 404);
    if (req.method !== (kind === "pubkey" ? "GET" : "POST")) {
      return json({ error: "method not allowed" }, 405);
    }
    const text = await req.text();
    const rec: Recorded = {
      body: parseJson(text),
      text,
      headers: req.headers,
      at: Date.now(),
    };
    const reply = await this.#pick(kind);
    if (reply?.lost) {
      if (kind === "status" || kind === "delete") {
        this.lostReports[kind].push(rec);
      }
      // Held until the caller gives up (or the stand-in stops).
      const gone = AbortSignal.any([req.signal, this.#http.killSignal]);
      await sleep(2 ** 31 - 1, gone);
      return json({ error: "lost" }, 504);
    }
    if (kind === "pubkey") {
      return reply ? this.#reply(reply) : new Response(this.publicKeyPem, {
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    // A report answered with a simulated refusal is not taken in.
    const accepted = !reply || (reply.status ?? 200) < 300;
    const problems = kind === "route"
      ? []
      : this.#take(kind, rec.body, accepted);
    if (problems.length > 0) {
      const invalid = { ...rec, problems };
      this.invalidReports.push(invalid);
      this.#trim(this.invalidReports);
      if (kind !== "route") this.#opts.onInvalid?.(kind, invalid);
    }
    this.#records.add(kind, problems.length > 0 ? { ...rec, problems } : rec);
    this.#trim(this.#records[kind]);
    if (kind === "route") {
      return reply ? this.#reply(reply) : this.#routeRequest(rec.body);
    }
    if (this.#delayMs > 0) await sleep(this.#delayMs, this.#http.killSignal);
    if (problems.length > 0 && this.#opts.strict && !reply) {
      const name = kind === "status" ? "worker_status" : "delete_requests";
      return json({
        error: `invalid ${name}: ${problems[0].field}: ${problems[0].error}`,
        field: problems[0].field,
        problems,
      }, 422);
    }
    return this.#reply(reply);
  }

  /** Checks a report; a valid one updates the fleet when `apply`. */
  #take(kind: "status" | "delete", body: unknown, apply: boolean): Problem[] {
    if (kind === "status") {
      const { problems } = checkWorkerStatus(body);
      if (apply && problems.length === 0) {
        this.#fleet.report(body as StatusFigures);
      }
      return problems;
    }
    const { problems, finished } = checkDeleteRequests(body);
    if (apply && problems.length === 0) {
      this.#fleet.finished((body as { worker_id: number }).worker_id, finished);
    }
    return problems;
  }

  /** Requests told "waiting" in the last 10 s and not routed since. */
  #waitingNow(): number {
    const cutoff = Date.now() - 10_000;
    for (const [idx, at] of this.#waitingSince) {
      if (at < cutoff) this.#waitingSince.delete(idx);
    }
    return this.#waitingSince.size;
  }

  #trim(list: unknown[]): void {
    const limit = this.#opts.historyLimit ?? Infinity;
    if (list.length > limit) list.splice(0, list.length - limit);
  }

  /** The last 20 reports of both kinds, newest first (tokens hidden). */
  #lastReports(): LiveReport[] {
    const pick = (kind: string, list: Recorded[]) =>
      list.slice(-20).map((r) => ({
        kind,
        at: r.at,
        problems: (r.problems ?? []).map((p) => `${p.field}: ${p.error}`),
        body: shorten(hideToken(r.text)),
      }));
    // Newest first; reports of one millisecond stay newest first too (the
    // sort is stable, so they go in reversed arrival order first).
    return [
      ...pick("worker_status", this.#records.status),
      ...pick("delete_requests", this.#records.delete),
    ].reverse().sort((a, b) => b.at - a.at).slice(0, 20);
  }

  #view(): LiveView {
    const view = this.#viewFigures();
    view.reports = this.#lastReports();
    return view;
  }

  #viewFigures(): LiveView {
    return this.#fleet.view(this.#opts.title ?? "edgeworker control plane", {
      "ready workers": this.#fleet.readyCount,
      "routed": this.#reqnum,
      "status reports": this.#counts.status,
      "delete reports": this.#counts.delete,
      "waiting to be routed": this.#waitingNow(),
      "invalid reports": this.invalidReports.length,
    });
  }

  /** The reply set for the next request of `kind` (waits for a scripted one). */
  async #pick(kind: Kind): Promise<Reply | undefined> {
    const n = ++this.#counts[kind];
    const source = this.#replies[kind];
    if (typeof source !== "function") return source;
    // A reply still pending when the stand-in stops is given up.
    const settled = new AbortController();
    const stop = AbortSignal.any([settled.signal, this.#http.killSignal]);
    const killed = sleep(2 ** 31 - 1, stop).then(() => undefined);
    try {
      return await Promise.race([source(n), killed]);
    } finally {
      settled.abort();
    }
  }

  #reply(r: Reply | undefined): Response {
    const status = r?.status ?? 200;
    if (r?.text !== undefined) {
      return new Response(r.text, {
        status,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    const body = r?.body ??
      (status >= 400 ? { error: `simulated ${status}` } : { success: true });
    return json(body, status);
  }

  async #routeRequest(body: unknown): Promise<Response> {
    if (!isObject(body)) return json({ error: "invalid JSON body" }, 400);
    if (this.#opts.apiKey !== undefined && body.api_key !== this.#opts.apiKey) {
      return json({ error: "invalid api_key" }, 401);
    }
    const endpoint = String(body.endpoint ?? "");
    const given = body.request_idx;
    const known = typeof given === "number" && Number.isInteger(given) &&
      given > 0;
    const requestIdx = known ? given : ++this.#requestIdx;
    if (!known) {
      this.#waitsLeft.set(requestIdx, this.#opts.waitsPerRequest ?? 0);
    }
    const waiting = () => {
      this.#waitingSince.set(requestIdx, Date.now());
      if (this.#waitingSince.size > 10_000) this.#waitingNow();
      return json({ endpoint, status: "waiting", request_idx: requestIdx });
    };
    if (!this.#ready) return waiting();
    const cost = typeof body.cost === "number" ? body.cost : 100;
    const chosen = this.#workerUrl !== undefined
      ? { id: 0, url: this.#workerUrl }
      : this.#fleet.choose(cost);
    if (chosen === undefined) return waiting();
    const url = chosen.url;
    const waits = this.#waitsLeft.get(requestIdx) ?? 0;
    if (waits > 0) {
      this.#waitsLeft.set(requestIdx, waits - 1);
      return waiting();
    }
    this.#waitsLeft.delete(requestIdx);
    this.#waitingSince.delete(requestIdx);
    this.#fleet.routed(chosen.id, requestIdx, cost);
    const reqnum = ++this.#reqnum;
    const message = this.#opts.signatureFormat === "legacy"
      ? legacySignatureMessage({
        cost,
        endpoint,
        reqnum,
        request_idx: requestIdx,
        url,
      })
      : urlSignatureMessage(url);
    const signature = await this.sign(message);
    // Written by hand so `cost` is a float literal (`100.0`), as Vast sends it.
    const text =
      `{"__request_id": ${JSON.stringify(crypto.randomUUID())}, "cost": ${
        pythonFloatRepr(cost)
      }, ` +
      `"endpoint": ${
        JSON.stringify(endpoint)
      }, "reqnum": ${reqnum}, "request_idx": ${requestIdx}, ` +
      `"signature": ${JSON.stringify(signature)}, "url": ${
        JSON.stringify(url)
      }}`;
    return new Response(text, {
      headers: { "content-type": "application/json" },
    });
  }
}

/** A report's text without its `mtoken` (the page is served to anyone). */
function hideToken(text: string): string {
  return text.replace(/("mtoken"\s*:\s*)"(?:[^"\\]|\\.)*"/g, '$1"(hidden)"');
}

const shorten = (text: string): string =>
  text.length > 400 ? `${text.slice(0, 400)}…` : text;
