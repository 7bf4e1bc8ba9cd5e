/**
 * A stand-in autoscaler key for integration tests: a real RSA-2048 key pair,
 * signatures over message bytes written out by hand (independent of
 * `lib/auth.ts`), and a tiny `REPORT_ADDR` server that serves `/pubkey/`.
 */
import { publicKeyPem } from "../../dev/_signing.ts";
import { controlPlaneKeys } from "./dev.ts";

/** A key pair with its public half as SPKI PEM. */
export interface TestKeys {
  privateKey: CryptoKey;
  publicPem: string;
}

/** Generates a fresh RSA-2048 key pair. */
export async function generateKeys(): Promise<TestKeys> {
  const pair = await controlPlaneKeys();
  return {
    privateKey: pair.privateKey,
    publicPem: await publicKeyPem(pair.publicKey),
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

/** A tiny autoscaler: `/pubkey/` answers once released, anything else `{}`. */
export interface KeyServer {
  /** Base URL, for `REPORT_ADDR`. */
  url: string;
  /** `/pubkey/` requests received. */
  pubkeyHits: number;
  /** Paths of every request received. */
  paths: string[];
  /** Lets held and future `/pubkey/` requests get the key. */
  release(): void;
  close(): Promise<void>;
}

/**
 * Starts the server on 127.0.0.1. With `hold`, `/pubkey/` requests wait
 * until {@linkcode KeyServer.release} (a slow autoscaler).
 */
export function startKeyServer(pem: string, hold = false): KeyServer {
  const gate = Promise.withResolvers<void>();
  if (!hold) gate.resolve();
  const handle: KeyServer = {
    url: "",
    pubkeyHits: 0,
    paths: [],
    release: () => gate.resolve(),
    close: async () => {
      gate.resolve();
      await server.shutdown();
    },
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      handle.paths.push(path);
      await req.body?.cancel();
      if (path !== "/pubkey/") return Response.json({});
      handle.pubkeyHits++;
      await gate.promise;
      return new Response(pem, { headers: { "content-type": "text/plain" } });
    },
  );
  handle.url = `http://127.0.0.1:${server.addr.port}`;
  return handle;
}
