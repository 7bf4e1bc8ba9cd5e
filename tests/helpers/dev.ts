/**
 * Helpers for the tests of the dev stand-ins (`dev/`): their `/health`
 * answer, writing and waiting for log lines, waiting for a closed port,
 * temporary log files and key pairs.
 *
 * @module
 */
import { RSA_ALGORITHM } from "../../dev/_signing.ts";
import { waitFor } from "./http.ts";

/** `GET <url>/health`: its status and body (JSON if it parses, else text). */
export async function health(
  url: string,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${url}/health`);
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    return { status: res.status, body: text };
  }
}

/** Appends lines to a log file, as the model server would. */
export async function appendLog(
  path: string,
  ...lines: string[]
): Promise<void> {
  await Deno.writeTextFile(path, lines.map((l) => l + "\n").join(""), {
    append: true,
  });
}

/** Waits until the file at `path` contains `text`. */
export function waitForLog(path: string, text: string): Promise<void> {
  return waitFor(
    async () => (await Deno.readTextFile(path)).includes(text),
    1000,
    `"${text}" in ${path}`,
  );
}

/** Waits until nothing listens at `url` any more (connection refused). */
export function waitUntilRefused(url: string): Promise<void> {
  return waitFor(
    async () => {
      try {
        await (await fetch(`${url}/health`)).body?.cancel();
        return false;
      } catch {
        return true;
      }
    },
    1000,
    `${url} refusing connections`,
  );
}

/** An empty temporary file for a stand-in's log; `await using` removes it. */
export interface TempLog extends AsyncDisposable {
  readonly path: string;
}

/** Creates a {@linkcode TempLog}. */
export async function tempLog(): Promise<TempLog> {
  const path = await Deno.makeTempFile();
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path) };
}

/**
 * A fresh RSA-2048 key pair of the kind the autoscaler signs with
 * (RSASSA-PKCS1-v1_5, SHA-256): the control plane's `keyPair`, or any test
 * signer. Generating one is slow: share it across a file's tests.
 */
export function controlPlaneKeys(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(RSA_ALGORITHM, true, [
    "sign",
    "verify",
  ]) as Promise<CryptoKeyPair>;
}
