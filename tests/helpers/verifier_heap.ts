/**
 * Run as a subprocess with `--v8-flags=--expose-gc` by `auth_memory_test.ts`:
 * feeds a `SignatureVerifier` many distinct invalid and valid requests whose
 * url is 4096 DEL characters (24 KiB once escaped Python-style), then prints
 * `{"retainedBytes": n}`, the heap growth after a full GC.
 */
import { SignatureVerifier } from "../../lib/auth/signatures.ts";
import { controlPlaneKeys } from "./dev.ts";
import { signText } from "./signing.ts";

const [invalid, valid] = Deno.args.map(Number);
const gc = (globalThis as unknown as { gc(): void }).gc;
const keys = await controlPlaneKeys();
const v = new SignatureVerifier({ format: "url" });
v.setKey(keys.publicKey);
const url = (i: number) => "http://w/" + "\x7f".repeat(4080) + i;
// Python escapes DEL as \u007f (ensure_ascii): written out by hand here.
const signUrl = (key: CryptoKey, u: string) =>
  signText(key, `{\n    "url": "${u.replaceAll("\x7f", "\\u007f")}"\n}`);
// Warm up the code paths before the first measure.
await v.verify({
  url: url(-1),
  signature: await signUrl(keys.privateKey, "x"),
});
const forged = await signUrl(keys.privateKey, "http://elsewhere:1");
const signed = await Promise.all(
  Array.from({ length: valid }, (_, i) => signUrl(keys.privateKey, url(i))),
);
gc();
const before = Deno.memoryUsage().heapUsed;
for (let i = 0; i < invalid; i++) {
  const r = await v.verify({ url: url(i), signature: forged });
  if (r.ok) throw new Error("a forged signature passed");
}
for (let i = 0; i < valid; i++) {
  const r = await v.verify({ url: url(i), signature: signed[i] });
  if (!r.ok) throw new Error(`a valid signature failed: ${r.reason}`);
}
gc();
console.log(
  JSON.stringify({ retainedBytes: Deno.memoryUsage().heapUsed - before }),
);
