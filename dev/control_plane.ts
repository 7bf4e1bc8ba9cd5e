/**
 * A stand-in for Vast's serverless control plane (the autoscaler at
 * `REPORT_ADDR`): `GET /pubkey/`, `POST /route/` with real RSA-2048
 * signatures, and `POST /worker_status/` / `POST /delete_requests/`, whose
 * bodies it records for tests. Replies and delays can be set to simulate an
 * outage, a slow autoscaler, or reports lost on the way (never answered).
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

import { delay } from "../lib/std/async.ts";
import { pythonFloatRepr } from "../lib/auth/python_json.ts";
import { type Recorded, Recorder, type RecordKind } from "./_records.ts";
import { DevServer, isObject, json, readJson } from "./_serve.ts";
import {
  legacySignatureMessage,
  publicKeyPem,
  RSA_ALGORITHM,
  signText,
  urlSignatureMessage,
} from "./_signing.ts";

export { legacySignatureMessage, urlSignatureMessage } from "./_signing.ts";
export type { Recorded, RecordKind } from "./_records.ts";

/** Options of {@linkcode startControlPlane}. */
export interface ControlPlaneOptions {
  /** Port to bind on 127.0.0.1; 0 picks a free one. @default 0 */
  port?: number;
  /** URL `/route/` hands out; without it `/route/` answers "waiting". */
  workerUrl?: string;
  /** Which message the route signature covers. @default "url" */
  signatureFormat?: "url" | "legacy";
  /** If set, `/route/` answers 401 unless `api_key` equals it. */
  apiKey?: string;
  /** Reuse a key pair (key generation takes a moment). @default a new one */
  keyPair?: CryptoKeyPair;
}

/** A canned answer: status and JSON body. */
export interface Reply {
  /** HTTP status. @default 200 */
  status?: number;
  /** JSON body. @default {"success": true} (or `{"error": ...}` for >= 400) */
  body?: unknown;
  /**
   * Lost on the way: the body goes to `lostReports`, not the processed
   * records, and no answer ever comes (the worker's try times out).
   * @default false
   */
  lost?: boolean;
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
  /** Base64 RSA-PKCS1v15-SHA256 signature of `message` with the served key. */
  sign(message: string): Promise<string>;
  /** Sets (or clears) the worker URL `/route/` hands out. */
  setWorkerUrl(url: string | undefined): void;
  /** `false` makes `/route/` answer "waiting" even with a worker URL. */
  setReady(ready: boolean): void;
  /** Answer for `/worker_status/` (`undefined` restores 200). */
  setStatusReply(reply: Reply | undefined): void;
  /** Answer for `/delete_requests/` (`undefined` restores 200). */
  setDeleteReply(reply: Reply | undefined): void;
  /** Answer for `/pubkey/` (`undefined` restores the PEM). */
  setPubkeyReply(reply: Reply | undefined): void;
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
  #replies: Partial<Record<"status" | "delete" | "pubkey", Reply>> = {};
  #delayMs = 0;
  #reqnum = 0;
  #requestIdx = 0;
  #pubkeyFetches = 0;
  readonly lostReports = {
    status: [] as Recorded[],
    delete: [] as Recorded[],
  };

  constructor(opts: ControlPlaneOptions, keys: CryptoKeyPair, pem: string) {
    this.#opts = opts;
    this.#key = keys.privateKey;
    this.publicKeyPem = pem;
    this.#workerUrl = opts.workerUrl;
    this.#http = new DevServer(opts.port ?? 0, (req) => this.#route(req));
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
    return this.#pubkeyFetches;
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
  setStatusReply(reply: Reply | undefined): void {
    this.#replies.status = reply;
  }
  setDeleteReply(reply: Reply | undefined): void {
    this.#replies.delete = reply;
  }
  setPubkeyReply(reply: Reply | undefined): void {
    this.#replies.pubkey = reply;
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
    const post = req.method === "POST";
    if (path === "/pubkey/" && req.method === "GET") {
      this.#pubkeyFetches++;
      const r = this.#replies.pubkey;
      if (r) return this.#reply(r);
      return new Response(this.publicKeyPem, {
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    if (path === "/route/" && post) {
      return this.#routeRequest(await readJson(req));
    }
    if ((path === "/worker_status/" || path === "/delete_requests/") && post) {
      const kind = path === "/worker_status/" ? "status" : "delete";
      const body = await readJson(req);
      if (this.#replies[kind]?.lost) {
        this.lostReports[kind].push({ body, at: Date.now() });
        // Held until the worker gives up (or the stand-in stops).
        const gone = AbortSignal.any([req.signal, this.#http.killSignal]);
        await delay(2 ** 31 - 1, { signal: gone }).catch(() => {});
        return json({ error: "lost" }, 504);
      }
      this.#records.add(kind, body);
      if (this.#delayMs > 0) {
        const signal = this.#http.killSignal;
        await delay(this.#delayMs, { signal }).catch(() => {});
      }
      return this.#reply(this.#replies[kind]);
    }
    const known = [
      "/pubkey/",
      "/route/",
      "/worker_status/",
      "/delete_requests/",
    ].includes(path);
    return json(
      { error: known ? "method not allowed" : "not found" },
      known ? 405 : 404,
    );
  }

  #reply(r: Reply | undefined): Response {
    const status = r?.status ?? 200;
    const body = r?.body ??
      (status >= 400 ? { error: `simulated ${status}` } : { success: true });
    return json(body, status);
  }

  async #routeRequest(body: unknown): Promise<Response> {
    this.#records.add("route", body);
    if (!isObject(body)) return json({ error: "invalid JSON body" }, 400);
    if (this.#opts.apiKey !== undefined && body.api_key !== this.#opts.apiKey) {
      return json({ error: "invalid api_key" }, 401);
    }
    const endpoint = String(body.endpoint ?? "");
    const given = body.request_idx;
    const requestIdx =
      typeof given === "number" && Number.isInteger(given) && given > 0
        ? given
        : ++this.#requestIdx;
    const url = this.#workerUrl;
    if (url === undefined || !this.#ready) {
      return json({ endpoint, status: "waiting", request_idx: requestIdx });
    }
    const cost = typeof body.cost === "number" ? body.cost : 100;
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
