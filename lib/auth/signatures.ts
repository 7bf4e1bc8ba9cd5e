/**
 * Autoscaler signature verification (vast-protocol.md section 5) and token
 * helpers.
 *
 * Longer than most modules: the url, legacy and any formats share the cache, the hot pair and the replay window.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { SignatureFormat } from "../config/env.ts";
import { memberTexts } from "./json_members.ts";
import {
  type ExactNumber,
  JsonNumber,
  pythonJsonDumps,
  pythonNumberValue,
  restoreNumberSources,
} from "./python_json.ts";

export { importPublicKey } from "./pubkey.ts";

const logger = getLogger(["edgeworker", "auth"]);
const encoder = new TextEncoder();
const ALGORITHM = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as const;
/** How far behind the newest accepted reqnum a legacy request may be (Python `MSG_HISTORY_LEN`). */
const REPLAY_WINDOW = 100;
/**
 * Most characters the signature cache holds (signatures and messages
 * together, about 1 byte each): 4096 usual pairs (a 344-character signature
 * and a url message of ~40) fit; long urls make it hold fewer.
 */
const CACHE_MAX_CHARS = 2_000_000;
/** Python's `Backend.reqnum` before any request. */
const FIRST_REQNUM = -1;

// Standard alphabet with padding, as Python's b64encode writes it.
const BASE64 =
  /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Bytes of Python `json.dumps({"url": url}, indent=4, sort_keys=True)`: the current signed message. */
export function urlMessage(url: string): Uint8Array {
  return encoder.encode(pythonJsonDumps({ url }));
}

/**
 * The `AuthData` dataclass fields Python signs in the legacy format. Python
 * builds the message from `asdict(auth_data)`, so keys outside the dataclass
 * (`signature` is removed explicitly, `__request_id` and any new key never get
 * in) are not signed. Before 2025-10-08 `request_idx` was not a field.
 */
export const LEGACY_FIELDS: readonly string[] = Object.freeze(
  ["cost", "endpoint", "reqnum", "request_idx", "url"],
);

/**
 * Bytes of the legacy signed message: the `fields` of `authData` that are
 * present, as Python `json.dumps(..., indent=4, sort_keys=True)`. Pass the raw
 * request body (`{"auth_data": {...}, ...}`) so numbers keep their wire
 * spelling (`1000.0` stays `1000.0`); without it an integral number prints as
 * an int.
 */
export function legacyMessage(
  authData: Record<string, unknown>,
  rawBody?: string,
  fields: readonly string[] = LEGACY_FIELDS,
): Uint8Array {
  const raw = rawBody === undefined ? {} : rawNumbers(rawBody, fields);
  return encoder.encode(legacyMessageText(authData, raw, fields));
}

function legacyMessageText(
  authData: Record<string, unknown>,
  raw: Record<string, JsonNumber>,
  fields: readonly string[],
): string {
  const message: Record<string, unknown> = {};
  for (const field of fields) {
    if (Object.hasOwn(authData, field)) message[field] = authData[field];
  }
  return pythonJsonDumps(restoreNumberSources(message, raw));
}

/**
 * The numbers among `fields` of the raw body's `auth_data`, with their source
 * text. Found by a scan, not a second parse of a body that may be megabytes
 * of payload.
 */
function rawNumbers(
  rawBody: string,
  fields: readonly string[],
): Record<string, JsonNumber> {
  const numbers: Record<string, JsonNumber> = {};
  let texts: Map<string, string>;
  try {
    texts = memberTexts(rawBody, ["auth_data"], fields);
  } catch {
    return numbers; // the caller already rejected bodies that are not JSON
  }
  for (const [field, source] of texts) {
    if (/^-?\d/.test(source)) {
      numbers[field] = new JsonNumber(Number(source), source);
    }
  }
  return numbers;
}

/** `auth_data.reqnum` exactly, from its source text when it matches the parsed value. */
function exactReqnum(
  authData: Record<string, unknown>,
  raw: Record<string, JsonNumber>,
): ExactNumber | undefined {
  const value = authData.reqnum;
  const source = raw.reqnum;
  if (source && Object.is(source.value, value)) {
    return pythonNumberValue(source.source);
  }
  return typeof value === "number" || typeof value === "bigint"
    ? value
    : undefined;
}

/** A collision-safe fixed-size key: SHA-256 of `text` (Web Crypto, no Node layer). */
async function digest(text: string): Promise<string> {
  const hash = new Uint8Array(
    await crypto.subtle.digest("SHA-256", encoder.encode(text)),
  );
  return String.fromCharCode(...hash);
}

/** Outcome of {@linkcode SignatureVerifier.verify}; `reason` is meant for logs. */
export type VerifyResult = { ok: true } | { ok: false; reason: string };

/** What the routes need of a verifier (tests may pass their own). */
export interface Verifier {
  /** Checks `authData`'s signature; `rawBody` keeps numbers as written. */
  verify(
    authData: Record<string, unknown>,
    rawBody?: string,
  ): Promise<VerifyResult>;
}

/** Options for {@linkcode SignatureVerifier}. */
export interface SignatureVerifierOptions {
  /** Message shape to check. */
  format: SignatureFormat;
  /** Accept every request without checking (Python `UNSECURED`). */
  unsecured?: boolean;
  /**
   * Valid (signature, message) pairs to remember, held as they are (a hit
   * is two string compares) within 2 million characters in all; 0
   * disables. Failures are never cached.
   * @default {4096}
   */
  cacheSize?: number;
  /** This worker's public URL; a valid signature for another URL is rejected. */
  expectedUrl?: string;
  /** Fields signed in the legacy format; default {@linkcode LEGACY_FIELDS}. */
  legacyFields?: readonly string[];
}

/**
 * Checks `auth_data` signatures from the autoscaler. Valid results are cached
 * per (signature, message), bounded in entries and characters so memory
 * stays bounded whatever the requests hold, and failures (which anyone can make) cannot push valid
 * entries out. The legacy format also enforces Python's replay window, which
 * cached results never bypass; only a legacy-verified request moves it (an
 * unsigned `reqnum` next to a url-only signature never does).
 */
export class SignatureVerifier implements Verifier {
  #options: SignatureVerifierOptions;
  #cacheSize: number;
  #key: CryptoKey | undefined;
  /** Signature → the message it verified, least recently used first. */
  #valid = new Map<string, string>();
  /** Characters held by {@linkcode #valid} (signatures and messages). */
  #validChars = 0;
  /** Checks in flight by signature, so concurrent copies share one RSA run. */
  #pending = new Map<string, { text: string; result: Promise<boolean> }>();
  // The last valid url-format pair: the autoscaler signs one url per
  // worker, so this answers nearly every request with two string compares
  // (no base64 decode, no digest). Only a verified pair gets here.
  #hot: { signature: string; url: string; text: string } | undefined;
  #latestReqnum: ExactNumber = FIRST_REQNUM;
  /** Digests of the last accepted legacy messages. */
  #history = new Set<string>();

  /** Creates a verifier; call {@linkcode setKey} before verifying. */
  constructor(options: SignatureVerifierOptions) {
    this.#options = { ...options };
    this.#cacheSize = options.cacheSize ?? 4096;
  }

  /** Sets the autoscaler public key (see `importPublicKey`); clears the cache. */
  setKey(key: CryptoKey): void {
    this.#key = key;
    this.#valid.clear();
    this.#validChars = 0;
    this.#pending.clear();
    this.#hot = undefined;
  }

  /** Whether a public key has been set. */
  get hasKey(): boolean {
    return this.#key !== undefined;
  }

  /**
   * Verifies `authData.signature`. `rawBody` is the raw request body text; the
   * legacy format needs it to print numbers exactly as Python does. Never
   * throws; failures are logged at debug level with the exact messages checked.
   */
  async verify(
    authData: Record<string, unknown>,
    rawBody?: string,
  ): Promise<VerifyResult> {
    if (this.#options.unsecured) return { ok: true };
    const checked: string[] = [];
    const result = await this.#verify(authData, rawBody, checked);
    if (!result.ok) {
      logger.debug(
        "Signature rejected: {reason}; messages checked {messages}, signature {signature}",
        {
          reason: result.reason,
          messages: checked,
          signature: shortenSignature(authData.signature),
        },
      );
    }
    return result;
  }

  async #verify(
    authData: Record<string, unknown>,
    rawBody: string | undefined,
    checked: string[],
  ): Promise<VerifyResult> {
    const key = this.#key;
    if (!key) return fail("public key not loaded yet");
    const signature = authData.signature;
    if (typeof signature !== "string") {
      return fail("signature is missing or not a string");
    }
    const hot = this.#hot;
    if (
      hot && hot.signature === signature && hot.url === authData.url &&
      this.#options.format !== "legacy"
    ) {
      checked.push(hot.text);
      return this.#accept(authData, "url", {});
    }
    // A url-format pair in the cache needs no decoding either: only a
    // signature that verified is there.
    if (this.#options.format !== "legacy" && typeof authData.url === "string") {
      const text = pythonJsonDumps({ url: authData.url });
      if (this.#cached(signature, text)) {
        checked.push(text);
        return this.#accept(authData, "url", {});
      }
    }
    if (!BASE64.test(signature)) return fail("signature is not valid base64");
    const sigBytes = Uint8Array.fromBase64(signature);
    const expected = (key.algorithm as RsaHashedKeyAlgorithm).modulusLength / 8;
    if (sigBytes.length !== expected) {
      return fail(
        `signature has wrong length: expected ${expected} bytes, got ${sigBytes.length}`,
      );
    }
    const formats = this.#options.format === "any"
      ? ["url", "legacy"] as const
      : [this.#options.format];
    const fields = this.#options.legacyFields ?? LEGACY_FIELDS;
    let raw: Record<string, JsonNumber> = {};
    for (const f of formats) {
      if (f === "url" && typeof authData.url !== "string") {
        return fail("url is missing or not a string");
      }
      if (f === "legacy" && rawBody !== undefined) {
        raw = rawNumbers(rawBody, [...fields, "reqnum"]);
      }
      const text = f === "url"
        ? pythonJsonDumps({ url: authData.url })
        : legacyMessageText(authData, raw, fields);
      checked.push(text);
      let valid: boolean;
      try {
        valid = await this.#check(key, signature, sigBytes, text);
      } catch (err) {
        // e.g. a key imported without the "verify" usage
        return fail(`signature check failed: ${(err as Error).message}`);
      }
      if (valid) {
        if (f === "url" && key === this.#key && this.#cacheSize > 0) {
          this.#hot = { signature, url: authData.url as string, text };
        }
        // Digested before #accept, which must not await (see there).
        const id = f === "legacy" ? await digest(text) : "";
        return this.#accept(authData, f, raw, id);
      }
    }
    return fail("signature does not match");
  }

  #check(
    key: CryptoKey,
    signature: string,
    sigBytes: Uint8Array,
    text: string,
  ): Promise<boolean> {
    if (this.#cached(signature, text)) return Promise.resolve(true);
    const running = this.#pending.get(signature);
    if (running?.text === text) return running.result;
    const result = crypto.subtle.verify(
      ALGORITHM,
      key,
      sigBytes as Uint8Array<ArrayBuffer>,
      encoder.encode(text),
    ).then((ok) => {
      if (ok && key === this.#key) this.#remember(signature, text);
      return ok;
    }).finally(() => {
      if (this.#pending.get(signature)?.result === result) {
        this.#pending.delete(signature);
      }
    });
    this.#pending.set(signature, { text, result });
    return result;
  }

  // Keyed by the signature, held with its message: a signature seen once
  // cannot vouch for another url. Two string compares, no digest.
  #cached(signature: string, text: string): boolean {
    if (this.#valid.get(signature) !== text) return false;
    this.#valid.delete(signature); // re-insert: least recently used goes first
    this.#valid.set(signature, text);
    return true;
  }

  #remember(signature: string, text: string): void {
    if (this.#cacheSize <= 0) return;
    const before = this.#valid.get(signature);
    if (before !== undefined) {
      this.#validChars -= signature.length + before.length;
      this.#valid.delete(signature);
    }
    this.#valid.set(signature, text);
    this.#validChars += signature.length + text.length;
    // Bounded in entries and in characters, whatever the messages hold.
    while (
      this.#valid.size > this.#cacheSize ||
      this.#validChars > CACHE_MAX_CHARS
    ) {
      const [oldSig, oldText] = this.#valid.entries().next().value!;
      this.#valid.delete(oldSig);
      this.#validChars -= oldSig.length + oldText.length;
    }
  }

  // Runs synchronously after the await, so two concurrent replays cannot
  // both pass. `id` is the legacy message's digest (its replay key).
  #accept(
    authData: Record<string, unknown>,
    format: "url" | "legacy",
    raw: Record<string, JsonNumber>,
    id = "",
  ): VerifyResult {
    const expectedUrl = this.#options.expectedUrl;
    if (expectedUrl !== undefined && authData.url !== expectedUrl) {
      return fail(
        `url mismatch: signed for ${authData.url}, this worker is ${expectedUrl}`,
      );
    }
    // A url-only signature leaves reqnum unsigned: it must not move the window.
    if (format === "url") return { ok: true };
    const reqnum = exactReqnum(authData, raw);
    if (reqnum === undefined) return fail("reqnum is missing or not a number");
    const latest = this.#latestReqnum;
    // Python: reqnum < self.reqnum - MSG_HISTORY_LEN, exact for ints of any size.
    const lowest = typeof latest === "bigint"
      ? latest - BigInt(REPLAY_WINDOW)
      : latest - REPLAY_WINDOW;
    if (reqnum < lowest) {
      return fail(
        `reqnum ${reqnum} is outside the replay window (latest ${latest})`,
      );
    }
    if (this.#history.has(id)) return fail("replayed request");
    this.#history.add(id);
    if (this.#history.size > REPLAY_WINDOW) {
      this.#history.delete(this.#history.values().next().value!);
    }
    if (reqnum > latest) this.#latestReqnum = reqnum;
    return { ok: true };
  }
}

function fail(reason: string): VerifyResult {
  return { ok: false, reason };
}

function shortenSignature(signature: unknown): string {
  const text = String(signature);
  return text.length <= 16
    ? text
    : `${text.slice(0, 12)}… (${text.length} chars)`;
}

/**
 * Compares two secrets in time that depends on the longer one's length
 * only, never on where they differ (as Python's `hmac.compare_digest`).
 */
export function tokensEqual(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  let diff = x.length ^ y.length;
  const n = Math.max(x.length, y.length);
  for (let i = 0; i < n; i++) diff |= (x[i] | 0) ^ (y[i] | 0);
  return diff === 0;
}

/** A secret made safe for logs: its first 6 characters and "…", or just "…" below 12 characters. */
export function shortenSecret(s: string): string {
  return s.length < 12 ? "…" : `${s.slice(0, 6)}…`;
}
