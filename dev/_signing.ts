/**
 * RSA signing for the control-plane stand-in, and the exact message bytes
 * Vast's workers verify (Python `json.dumps(..., indent=4, sort_keys=True)`).
 *
 * @module
 */
import {
  JsonNumber,
  pythonFloatRepr,
  pythonJsonDumps,
} from "../lib/auth/python_json.ts";

/** RSASSA-PKCS1-v1_5 with SHA-256, as Vast's autoscaler signs. */
export const RSA_ALGORITHM: RsaHashedKeyGenParams = {
  name: "RSASSA-PKCS1-v1_5",
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: "SHA-256",
};

/** Standard base64 of some bytes. */
export function toBase64(bytes: ArrayBuffer | Uint8Array): string {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let s = "";
  for (const b of u8) s += String.fromCharCode(b);
  return btoa(s);
}

/** The public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`, 64-char lines). */
export async function publicKeyPem(key: CryptoKey): Promise<string> {
  const b64 = toBase64(await crypto.subtle.exportKey("spki", key));
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN PUBLIC KEY-----\n${
    lines.join("\n")
  }\n-----END PUBLIC KEY-----\n`;
}

/** Base64 RSA-PKCS1v15-SHA256 signature over the UTF-8 bytes of `message`. */
export async function signText(
  key: CryptoKey,
  message: string,
): Promise<string> {
  const sig = await crypto.subtle.sign(
    "RSASSA-PKCS1-v1_5",
    key,
    new TextEncoder().encode(message),
  );
  return toBase64(sig);
}

/**
 * The message signed since vastai-sdk 1.0.1: only the worker URL,
 * `json.dumps({"url": url}, indent=4, sort_keys=True)`.
 */
export function urlSignatureMessage(url: string): string {
  return pythonJsonDumps({ url });
}

/**
 * The legacy message (pyworker ≤ 0.2.1, SDK 1.0.0): every auth field but
 * `signature` and `__request_id`, sorted, `cost` as a Python float.
 */
export function legacySignatureMessage(fields: {
  cost: number;
  endpoint: string;
  reqnum: number;
  request_idx: number;
  url: string;
}): string {
  const cost = new JsonNumber(fields.cost, pythonFloatRepr(fields.cost));
  return pythonJsonDumps({ ...fields, cost });
}
