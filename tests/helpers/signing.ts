/**
 * A stand-in autoscaler key for integration tests: a real RSA-2048 key pair
 * (give it to `dev/control_plane.ts` as `keyPair` to serve it at
 * `/pubkey/`) and signatures over message bytes written out by hand
 * (independent of `lib/auth/`).
 *
 * @module
 */
import { publicKeyPem } from "../../dev/_signing.ts";
import type { WorkerConfig } from "../../lib/config/schemas.ts";
import { controlPlaneKeys } from "./dev.ts";
import type { UpstreamHandle } from "./upstream.ts";
import { type Running, withUpstreamWorker } from "./worker.ts";

/** A key pair with its public half as SPKI PEM. */
export interface TestKeys {
  keyPair: CryptoKeyPair;
  privateKey: CryptoKey;
  publicPem: string;
}

/** Generates a fresh RSA-2048 key pair. */
export async function generateKeys(): Promise<TestKeys> {
  const keyPair = await controlPlaneKeys();
  return {
    keyPair,
    privateKey: keyPair.privateKey,
    publicPem: await publicKeyPem(keyPair.publicKey),
  };
}

/** Base64 RSASSA-PKCS1-v1_5/SHA-256 signature over the UTF-8 bytes of `text`. */
export async function signText(key: CryptoKey, text: string): Promise<string> {
  const sig = await crypto.subtle.sign(
    "RSASSA-PKCS1-v1_5",
    key,
    new TextEncoder().encode(text),
  );
  return new Uint8Array(sig).toBase64();
}

/**
 * The current signed message, as Python's
 * `json.dumps({"url": url}, indent=4, sort_keys=True)` writes it.
 */
export function urlMessage(url: string): string {
  return `{\n    "url": "${url}"\n}`;
}

/** Signature over {@linkcode urlMessage}. */
export function signUrl(key: CryptoKey, url: string): Promise<string> {
  return signText(key, urlMessage(url));
}

/**
 * The fields of an `auth_data` every signature format covers, sorted as
 * Python's `sort_keys` writes them (`/route/` adds `__request_id`).
 */
export const AUTH_DATA_FIELDS = [
  "cost",
  "endpoint",
  "reqnum",
  "request_idx",
  "signature",
  "url",
] as const;

/** An `auth_data` as `/route/` returns it, signed for `url`. */
export async function signedAuth(
  key: CryptoKey,
  url = "https://203.0.113.5:41234",
  extra: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  return {
    __request_id: crypto.randomUUID(),
    cost: 100,
    endpoint: "test-endpoint",
    reqnum: 1,
    request_idx: 1,
    signature: await signUrl(key, url),
    url,
    ...extra,
  };
}

/** Writes the PEM to a temp file (for `EDGEWORKER_PUBKEY_FILE`). */
export async function writePubkeyFile(
  dir: string,
  pem: string,
): Promise<string> {
  const path = `${dir}/autoscaler_pubkey.pem`;
  await Deno.writeTextFile(path, pem);
  return path;
}

/**
 * {@linkcode withUpstreamWorker} for `handlers`, with signatures checked
 * against `keys` (read from a file); `env` goes on top.
 */
export async function withKeyedWorker(
  keys: TestKeys,
  handlers: WorkerConfig["handlers"],
  fn: (w: Running, up: UpstreamHandle) => Promise<void>,
  env: Record<string, string> = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-key-" });
  try {
    await withUpstreamWorker(handlers, fn, {
      UNSECURED: "false",
      EDGEWORKER_PUBKEY_FILE: await writePubkeyFile(dir, keys.publicPem),
      ...env,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
