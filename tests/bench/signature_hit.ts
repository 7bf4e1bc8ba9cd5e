/**
 * What a signature-cache hit costs: `SignatureVerifier.verify` on a request
 * whose signature was verified before, in this process, timed over many
 * calls (median of rounds, µs per call):
 *
 *     deno run -A tests/bench/signature_hit.ts [calls=200000] [rounds=5]
 *
 * Two cases of the url format: the hot pair (the same signature as the
 * last request verified: the autoscaler's usual case, two string
 * compares), and two signed urls alternating (the one that is not the hot
 * pair is found in the cache: signature → message, compared as strings).
 *
 * @module
 */
import {
  importPublicKey,
  SignatureVerifier,
} from "../../lib/auth/signatures.ts";
import { generateKeys, signedAuth } from "../helpers/signing.ts";
import { median } from "./stats.ts";

const CALLS = Number(Deno.args[0] ?? 200_000);
const ROUNDS = Number(Deno.args[1] ?? 5);

const keys = await generateKeys();
const key = await importPublicKey(keys.publicPem);

async function timeCalls(
  verifier: SignatureVerifier,
  authOf: (i: number) => Record<string, unknown>,
  bodyOf: (i: number) => string | undefined,
): Promise<number> {
  const perRound: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    for (let i = 0; i < CALLS; i++) {
      const result = await verifier.verify(authOf(i), bodyOf(i));
      if (!result.ok) throw new Error(`rejected: ${result.reason}`);
    }
    perRound.push((performance.now() - t0) * 1000 / CALLS);
  }
  return median(perRound);
}

const url = await signedAuth(keys.privateKey, "https://203.0.113.5:41234");
const other = await signedAuth(keys.privateKey, "https://203.0.113.6:41234");

const hot = new SignatureVerifier({ format: "url" });
hot.setKey(key);
const hotUs = await timeCalls(hot, () => url, () => undefined);

const cached = new SignatureVerifier({ format: "url" });
cached.setKey(key);
const pair = [url, other];
const cachedUs = await timeCalls(cached, (i) => pair[i % 2], () => undefined);

console.log(`signature check, µs per call (median of ${ROUNDS} rounds):`);
console.log(
  `  url format, hot pair (same signature again)   ${hotUs.toFixed(2)}`,
);
console.log(
  `  url format, two urls alternating (half cached)  ${cachedUs.toFixed(2)}`,
);
