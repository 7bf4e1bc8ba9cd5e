import assert from "node:assert/strict";
import {
  fetchPublicKey,
  importPublicKey,
  loadPublicKeyFile,
} from "../lib/auth/pubkey.ts";
import { type ReplySource, startControlPlane } from "../dev/control_plane.ts";
import { controlPlaneKeys } from "./helpers/dev.ts";
import { waitFor } from "./helpers/http.ts";

const FIXTURES = new URL("./fixtures/auth/", import.meta.url);
const SPKI_PATH = new URL("public_spki.pem", FIXTURES).pathname;
const PKCS1_PATH = new URL("public_pkcs1.pem", FIXTURES).pathname;
const FAST = { initialBackoffMs: 1, timeoutMs: 2_000 };

/** Checks a key against the openssl-made known-answer vector url_ascii. */
async function verifiesFixture(key: CryptoKey): Promise<boolean> {
  const vectors = JSON.parse(
    await Deno.readTextFile(new URL("vectors.json", FIXTURES)),
  );
  const v = vectors.find((x: { name: string }) => x.name === "url_ascii");
  const message = await Deno.readFile(new URL(v.message_file, FIXTURES));
  return await crypto.subtle.verify(
    "RSASSA-PKCS1-v1_5",
    key,
    Uint8Array.fromBase64(v.signature),
    message,
  );
}

const KEYS = await controlPlaneKeys();

/**
 * The control-plane stand-in, its `/pubkey/` answering as `reply` says;
 * closed by `await using`.
 */
async function serve(reply: ReplySource) {
  const cp = await startControlPlane({ keyPair: KEYS });
  cp.setPubkeyReply(reply);
  return {
    base: cp.url,
    /** Path of every request received. */
    get paths() {
      return cp.requests.map((r) => r.path);
    },
    [Symbol.asyncDispose]: () => cp.close(),
  };
}

Deno.test("fetchPublicKey() retries until the autoscaler serves the key", async () => {
  const pem = await Deno.readTextFile(SPKI_PATH);
  await using srv = await serve((n) =>
    n <= 2 ? { status: 503, text: "warming up" } : { text: pem }
  );
  // REPORT_ADDR is a comma list; only the first address is used.
  const key = await fetchPublicKey(`${srv.base}/, http://127.0.0.1:9`, FAST);
  assert.deepEqual(srv.paths, ["/pubkey/", "/pubkey/", "/pubkey/"]);
  assert.equal(await verifiesFixture(key), true);
});

Deno.test("fetchPublicKey() accepts a PKCS#1 PEM from the server", async () => {
  const pem = await Deno.readTextFile(PKCS1_PATH);
  await using srv = await serve({ text: pem });
  const key = await fetchPublicKey(srv.base, FAST);
  assert.equal(await verifiesFixture(key), true);
});

Deno.test("fetchPublicKey() gives up after the last attempt and names the cause", async () => {
  const times: number[] = [];
  await using srv = await serve(() => {
    times.push(performance.now());
    return { status: 500, text: "nope" };
  });
  const options = { attempts: 4, initialBackoffMs: 20, timeoutMs: 2_000 };
  await assert.rejects(fetchPublicKey(srv.base, options), {
    message: `Failed to fetch public key from ${srv.base}/pubkey/ ` +
      "after 4 attempts: HTTP 500 Internal Server Error",
  });
  // Backoff doubles between tries: at least 20, 40 and 80 ms.
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  assert.equal(gaps.length, 3);
  gaps.forEach((gap, i) => assert.ok(gap >= 20 * 2 ** i - 1, `gaps ${gaps}`));
});

Deno.test("fetchPublicKey() retries a garbage key and reports it", async () => {
  await using srv = await serve({ text: "<html>not a key</html>" });
  await assert.rejects(fetchPublicKey(srv.base, { ...FAST, attempts: 2 }), {
    message: `Failed to fetch public key from ${srv.base}/pubkey/ after 2 ` +
      "attempts: response is not a usable public key: no PEM block found",
  });
  assert.equal(srv.paths.length, 2);
});

Deno.test("fetchPublicKey() times out a try that never answers", async () => {
  // It answers only once the client has given up.
  await using srv = await serve({ lost: true });
  const options = { attempts: 1, initialBackoffMs: 1, timeoutMs: 50 };
  await assert.rejects(fetchPublicKey(srv.base, options), {
    message: `Failed to fetch public key from ${srv.base}/pubkey/ ` +
      "after 1 attempt: timed out after 50 ms",
  });
});

Deno.test("fetchPublicKey() stops waiting when aborted during backoff", async () => {
  await using srv = await serve({ status: 502, text: "down" });
  const controller = new AbortController();
  const started = performance.now();
  const pending = fetchPublicKey(srv.base, {
    initialBackoffMs: 60_000,
    signal: controller.signal,
  });
  await waitFor(() => srv.paths.length > 0, 5_000, "the first fetch");
  controller.abort(new Error("worker is shutting down"));
  await assert.rejects(pending, { message: "worker is shutting down" });
  assert.ok(performance.now() - started < 5_000);
  assert.equal(srv.paths.length, 1);
});

Deno.test("fetchPublicKey() reports an unreachable autoscaler", async () => {
  // Take a free port, then close it so connections are refused.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  await assert.rejects(
    fetchPublicKey(`http://127.0.0.1:${port}`, { ...FAST, attempts: 2 }),
    (err: Error) => {
      assert.match(
        err.message,
        new RegExp(
          `^Failed to fetch public key from http://127\\.0\\.0\\.1:${port}/pubkey/ after 2 attempts: .+`,
        ),
      );
      return true;
    },
  );
});

Deno.test("fetchPublicKey() rejects bad arguments before any request", async () => {
  await assert.rejects(fetchPublicKey(" ,http://x"), {
    message: "Cannot fetch public key: reportAddr is empty",
  });
  await assert.rejects(fetchPublicKey("http://x", { attempts: 0 }), {
    name: "RangeError",
    message: "attempts must be at least 1",
  });
});

Deno.test("loadPublicKeyFile() loads SPKI and PKCS#1 files", async () => {
  for (const path of [SPKI_PATH, PKCS1_PATH]) {
    assert.equal(await verifiesFixture(await loadPublicKeyFile(path)), true);
  }
});

Deno.test("loadPublicKeyFile() names the file when it is missing or bad", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = `${dir}/missing.pem`;
    await assert.rejects(loadPublicKeyFile(missing), {
      message: `Cannot read public key file ${missing}: file not found`,
    });
    const bad = `${dir}/bad.pem`;
    await Deno.writeTextFile(bad, "ssh-rsa AAAAB3NzaC1yc2E user@host\n");
    await assert.rejects(loadPublicKeyFile(bad), {
      message: `Cannot load public key from ${bad}: no PEM block found`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("importPublicKey() wraps PKCS#1 into the same SPKI openssl writes", async () => {
  const read = (f: string) => Deno.readTextFile(new URL(f, FIXTURES));
  const spkiPem = await read("public_spki.pem");
  const fromPkcs1 = await importPublicKey(await read("public_pkcs1.pem"));
  const der = new Uint8Array(await crypto.subtle.exportKey("spki", fromPkcs1));
  const expected = spkiPem.replace(/-----[A-Z ]+-----|\s/g, "");
  assert.equal(der.toBase64(), expected);
});

Deno.test("importPublicKey() explains why text is not a key", async () => {
  const cases: [string, string][] = [
    ["hello", "Cannot load public key: no PEM block found"],
    [
      "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
      'Cannot load public key: unsupported PEM block "PRIVATE KEY"',
    ],
    [
      "-----BEGIN PUBLIC KEY-----\n***\n-----END PUBLIC KEY-----",
      "Cannot load public key: PEM body is not valid base64",
    ],
  ];
  for (const [pem, message] of cases) {
    await assert.rejects(importPublicKey(pem), { message });
  }
  // A well-formed SPKI of an EC key is not an RSA key.
  const ec = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  );
  const der = new Uint8Array(
    await crypto.subtle.exportKey("spki", ec.publicKey),
  );
  const pem =
    `-----BEGIN PUBLIC KEY-----\n${der.toBase64()}\n-----END PUBLIC KEY-----`;
  await assert.rejects(
    importPublicKey(pem),
    /^Error: Cannot load public key: ./,
  );
});
