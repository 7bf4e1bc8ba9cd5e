/**
 * Getting the autoscaler's RSA public key: PEM import (SPKI or PKCS#1), the
 * `GET {REPORT_ADDR}/pubkey/` fetch with retries, and loading from a file
 * (vast-protocol.md section 5.3).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { retry, RetryError } from "../std/async.ts";

const logger = getLogger(["edgeworker", "pubkey"]);
const ALGORITHM = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as const;
// AlgorithmIdentifier: SEQUENCE { OID 1.2.840.113549.1.1.1 (rsaEncryption), NULL }
const RSA_ENCRYPTION_ID = "300d06092a864886f70d0101010500";

/**
 * Imports an RSA public key for RSASSA-PKCS1-v1_5/SHA-256 verification.
 * Accepts SPKI (`BEGIN PUBLIC KEY`) and PKCS#1 (`BEGIN RSA PUBLIC KEY`) PEM,
 * like pycryptodome's `RSA.import_key`. Also exported from `lib/auth.ts`.
 *
 * @throws {Error} `Cannot load public key: ...` when the text is not a usable key.
 */
export async function importPublicKey(pem: string): Promise<CryptoKey> {
  try {
    return await importPem(pem);
  } catch (err) {
    throw new Error(`Cannot load public key: ${reasonOf(err)}`, { cause: err });
  }
}

async function importPem(pem: string): Promise<CryptoKey> {
  const block = /-----BEGIN ([A-Z ]+)-----([^-]*)-----END \1-----/.exec(pem);
  if (!block) throw new Error("no PEM block found");
  const [, label, body] = block;
  if (label !== "PUBLIC KEY" && label !== "RSA PUBLIC KEY") {
    throw new Error(`unsupported PEM block "${label}"`);
  }
  let der: Uint8Array;
  try {
    der = Uint8Array.fromBase64(body.replace(/\s+/g, ""));
  } catch {
    throw new Error("PEM body is not valid base64");
  }
  // Web Crypto has no "pkcs1" format, so wrap the RSAPublicKey in an SPKI.
  const spki = label === "PUBLIC KEY" ? der : pkcs1ToSpki(der);
  return await crypto.subtle.importKey(
    "spki",
    spki as Uint8Array<ArrayBuffer>,
    ALGORITHM,
    true,
    ["verify"],
  );
}

/** SPKI = SEQUENCE { AlgorithmIdentifier, BIT STRING { 0 unused bits, RSAPublicKey } }. */
function pkcs1ToSpki(pkcs1: Uint8Array): Uint8Array {
  const bitString = derTlv(0x03, [0x00, ...pkcs1]);
  const algorithm = Uint8Array.fromHex(RSA_ENCRYPTION_ID);
  return new Uint8Array(derTlv(0x30, [...algorithm, ...bitString]));
}

/** One DER tag-length-value, with the long length form above 127 bytes. */
function derTlv(tag: number, content: number[]): number[] {
  if (content.length < 0x80) return [tag, content.length, ...content];
  const len: number[] = [];
  for (let n = content.length; n > 0; n = Math.floor(n / 256)) {
    len.unshift(n % 256);
  }
  return [tag, 0x80 | len.length, ...len, ...content];
}

/** Options for {@linkcode fetchPublicKey}. */
export interface FetchPublicKeyOptions {
  /** Total tries; default 5 (as the Python SDK). */
  attempts?: number;
  /** Wait before the second try, doubled after each failure (to at most 60 s); default 1000 ms. */
  initialBackoffMs?: number;
  /** Limit for one try, including reading the body; default 10000 ms. */
  timeoutMs?: number;
  /** Stops retrying; the returned promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Fetches and imports `GET {first address of reportAddr}/pubkey/`. Network
 * errors, timeouts, non-200 answers and unusable PEM are retried with
 * exponential backoff (1, 2, 4, 8 s by default).
 *
 * @param reportAddr `REPORT_ADDR`, a comma-separated list; the first entry is used.
 * @throws {Error} naming the URL, the number of attempts and the last cause.
 */
export async function fetchPublicKey(
  reportAddr: string,
  options: FetchPublicKeyOptions = {},
): Promise<CryptoKey> {
  const { attempts = 5, initialBackoffMs = 1000, timeoutMs = 10_000, signal } =
    options;
  const base = reportAddr.split(",")[0].trim().replace(/\/+$/, "");
  if (!base) throw new Error("Cannot fetch public key: reportAddr is empty");
  if (!(attempts >= 1)) throw new RangeError("attempts must be at least 1");
  const url = `${base}/pubkey/`;
  let attempt = 0;
  try {
    return await retry(async () => {
      attempt++;
      try {
        return await fetchOnce(url, timeoutMs, signal);
      } catch (err) {
        if (!signal?.aborted) {
          logger.warn(
            "Public key fetch {attempt}/{attempts} from {url} failed: {error}",
            { attempt, attempts, url, error: reasonOf(err) },
          );
        }
        throw err;
      }
    }, {
      maxAttempts: attempts,
      minTimeout: initialBackoffMs,
      maxTimeout: Math.max(60_000, initialBackoffMs),
      multiplier: 2,
      jitter: 0,
      isRetriable: () => !signal?.aborted,
      signal,
    });
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    const cause = err instanceof RetryError ? err.cause : err;
    throw new Error(
      `Failed to fetch public key from ${url} after ${attempts} ${
        attempts === 1 ? "attempt" : "attempts"
      }: ${reasonOf(cause)}`,
      { cause },
    );
  }
}

async function fetchOnce(
  url: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<CryptoKey> {
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    const res = await fetch(url, {
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`HTTP ${res.status} ${res.statusText}`.trim());
    }
    const pem = await res.text();
    return await importPem(pem).catch((err) => {
      throw new Error(`response is not a usable public key: ${reasonOf(err)}`);
    });
  } catch (err) {
    if (!timeout.aborted || signal?.aborted) throw err;
    throw new Error(`timed out after ${timeoutMs} ms`, { cause: err });
  }
}

/**
 * Reads and imports a PEM public key file (SPKI or PKCS#1).
 *
 * @throws {Error} naming the file when it cannot be read or holds no usable key.
 */
export async function loadPublicKeyFile(path: string): Promise<CryptoKey> {
  let pem: string;
  try {
    pem = await Deno.readTextFile(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "file not found"
      : reasonOf(err);
    throw new Error(`Cannot read public key file ${path}: ${why}`, {
      cause: err,
    });
  }
  try {
    return await importPem(pem);
  } catch (err) {
    throw new Error(`Cannot load public key from ${path}: ${reasonOf(err)}`, {
      cause: err,
    });
  }
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
