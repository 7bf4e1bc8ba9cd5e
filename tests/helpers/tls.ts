/**
 * A self-signed certificate for 127.0.0.1 made by the openssl CLI, for
 * tests of HTTPS on either side of the worker.
 *
 * @module
 */
import assert from "node:assert/strict";

/** A self-signed certificate for 127.0.0.1, written to `dir`. */
export async function makeCert(
  dir: string,
): Promise<{ cert: string; key: string; pem: string }> {
  const cert = `${dir}/instance.crt`;
  const key = `${dir}/instance.key`;
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      // rustls refuses a CA certificate as the server's own (CaUsedAsEndEntity).
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-keyout",
      key,
      "-out",
      cert,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return { cert, key, pem: await Deno.readTextFile(cert) };
}
