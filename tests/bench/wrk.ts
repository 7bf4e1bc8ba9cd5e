/**
 * Driving `wrk` (Debian's package) for the bench's closed-loop POST load:
 * a Lua script in a temp file sets method, body and headers and prints the
 * summary as one JSON line from `done()`.
 *
 * @module
 */
import type { HttpResult } from "./loadgen.ts";

/** Whether `wrk` is on the PATH. */
export async function haveWrk(): Promise<boolean> {
  try {
    const out = await new Deno.Command("wrk", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    // wrk --version prints its usage and exits 1.
    return out.code === 0 || out.code === 1;
  } catch {
    return false;
  }
}

const MARK = "BENCH_JSON ";

/** The Lua script: a fixed POST, and the summary as JSON at the end. */
export function wrkScript(body: string): string {
  // A long bracket string cannot be closed by JSON text.
  return `wrk.method = "POST"
wrk.body = [==[${body}]==]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '${MARK}{"requests":%d,"us":%d,"p50":%d,"p99":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
`;
}

/**
 * Runs `wrk` against `url` for `durationS` seconds with `concurrency`
 * connections. wrk's `status` errors are answers of 400 and above, counted
 * here as non-2xx (the bench's upstream never redirects).
 */
export async function runWrk(
  url: string,
  body: string,
  concurrency: number,
  durationS: number,
  scriptDir: string,
): Promise<HttpResult> {
  const script = `${scriptDir}/post.lua`;
  await Deno.writeTextFile(script, wrkScript(body));
  const threads = Math.min(2, concurrency);
  const out = await new Deno.Command("wrk", {
    args: [
      `-t${threads}`,
      `-c${concurrency}`,
      `-d${durationS}s`,
      "--timeout",
      "10s",
      "-s",
      script,
      url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const line = text.split("\n").find((l) => l.startsWith(MARK));
  if (!out.success || !line) {
    throw new Error(
      `wrk failed (${out.code}): ${text}${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  const s = JSON.parse(line.slice(MARK.length));
  return {
    requests: s.requests,
    seconds: s.us / 1e6,
    p50Ms: s.p50 / 1000,
    p99Ms: s.p99 / 1000,
    non2xx: s.status,
    transportErrors: s.connect + s.read + s.write + s.timeout,
  };
}
