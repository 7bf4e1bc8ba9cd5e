/**
 * templates/start.sh under bash against local servers on 127.0.0.1: one
 * serving the release artifact (a tiny shell script standing in for the
 * binary, which records how it was started), autoscaler stand-ins taking
 * `/worker_status/` and a certificate signer.
 */
import assert from "node:assert/strict";
import { freePort } from "./_scenario.ts";

const SCRIPT = new URL("../../templates/start.sh", import.meta.url).pathname;

/** The stand-in binary: writes its pid, cwd, limits, env and args. */
const STAND_IN = `#!/bin/sh
{
  echo "pid=$$"
  echo "cwd=$(pwd)"
  echo "nofile=$(ulimit -n)"
  echo "report=$REPORT_ADDR"
  echo "ssl=$USE_SSL"
  for a in "$@"; do echo "arg=$a"; done
} > "$RECORD"
exit 7
`;

async function sha256(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** A local server: `routes` answer by path; every request is recorded. */
function serve(
  handler: (req: Request, body: Uint8Array) => Response | Promise<Response>,
) {
  const seen: { path: string; query: string; body: Uint8Array }[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const body = new Uint8Array(await req.arrayBuffer());
      const url = new URL(req.url);
      seen.push({ path: url.pathname, query: url.search, body });
      return await handler(req, body);
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    seen,
    close: () => server.shutdown(),
  };
}

/** An autoscaler stand-in recording the JSON of each `/worker_status/`. */
function autoscaler() {
  const s = serve(() => Response.json({ success: true }));
  return {
    ...s,
    reports: () =>
      s.seen.filter((r) => r.path === "/worker_status/").map((r) =>
        JSON.parse(new TextDecoder().decode(r.body)) as Record<string, unknown>
      ),
  };
}

interface Run {
  code: number;
  pid: number;
  stderr: string;
  /** What the stand-in recorded, or undefined when it did not run. */
  record?: Map<string, string[]>;
}

/** Runs start.sh with `env` (and a soft open-files limit of 256). */
async function start(dir: string, env: Record<string, string>): Promise<Run> {
  const recordFile = `${dir}/record`;
  await Deno.remove(recordFile).catch(() => {});
  const child = new Deno.Command("bash", {
    args: ["-c", 'ulimit -Sn 256 && exec bash "$0"', SCRIPT],
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      RECORD: recordFile,
      EDGEWORKER_DIR: `${dir}/cache`,
      USE_SSL: "false",
      EDGEWORKER_FAILURE_PAUSE: "0",
      EDGEWORKER_DOWNLOAD_RETRIES: "0",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = await child.output();
  let record: Map<string, string[]> | undefined;
  try {
    record = new Map();
    for (
      const line of (await Deno.readTextFile(recordFile)).trim().split("\n")
    ) {
      const [k, ...v] = line.split("=");
      record.set(k, [...(record.get(k) ?? []), v.join("=")]);
    }
  } catch {
    record = undefined;
  }
  return {
    code: out.code,
    pid: child.pid,
    stderr: new TextDecoder().decode(out.stderr),
    record,
  };
}

async function hardNofile(): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: ["-c", "ulimit -Hn"],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

async function cached(dir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(`${dir}/cache`))).map((e) =>
      e.name
    ).filter((
      n,
    ) => n.startsWith("edgeworker-")).sort();
  } catch {
    return [];
  }
}

/** A temp dir, the artifact server and two autoscalers, cleaned up after. */
async function withSetup(
  artifact: Uint8Array<ArrayBuffer>,
  fn: (
    s: {
      dir: string;
      sha: string;
      files: ReturnType<typeof serve>;
      a: ReturnType<typeof autoscaler>;
      b: ReturnType<typeof autoscaler>;
      env: Record<string, string>;
    },
  ) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "edgeworker-start-" });
  const files = serve((req) =>
    new URL(req.url).pathname === "/edgeworker"
      ? new Response(artifact)
      : new Response("not found", { status: 404 })
  );
  const a = autoscaler();
  const b = autoscaler();
  const sha = await sha256(artifact);
  try {
    await fn({
      dir,
      sha,
      files,
      a,
      b,
      env: {
        EDGEWORKER_URL: `${files.url}/edgeworker`,
        EDGEWORKER_SHA256: sha,
        BACKEND: "vllm",
        REPORT_ADDR: `${a.url}, ${b.url}/`,
        CONTAINER_ID: "42",
        MASTER_TOKEN: "tok",
        PUBLIC_IPADDR: "203.0.113.9",
        VAST_TCP_PORT_3000: "40000",
      },
    });
  } finally {
    await files.close();
    await a.close();
    await b.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const standIn = new TextEncoder().encode(STAND_IN);

/** Checks each autoscaler got exactly one launch-failure body; returns its error_msg. */
function reported(
  a: ReturnType<typeof autoscaler>,
  b: ReturnType<typeof autoscaler>,
  scheme = "http",
): string {
  const bodies = [...a.reports(), ...b.reports()];
  assert.equal(bodies.length, 2, JSON.stringify(bodies));
  assert.deepEqual(bodies[0], bodies[1]);
  const body = bodies[0];
  assert.deepEqual(Object.keys(body), [
    "id",
    "mtoken",
    "version",
    "error_msg",
    "url",
  ]);
  assert.equal(body.id, 42);
  assert.equal(body.mtoken, "tok");
  assert.equal(body.version, "1.1.0");
  assert.equal(body.url, `${scheme}://203.0.113.9:40000`);
  return String(body.error_msg);
}

Deno.test("a good checksum runs the binary: exec'd in EDGEWORKER_DIR as `run --preset $BACKEND`, hard open-files limit", async () => {
  await withSetup(standIn, async ({ dir, sha, a, b, env }) => {
    const run = await start(dir, env);
    assert.equal(run.code, 7, run.stderr); // the stand-in's own exit code
    const rec = run.record!;
    assert.deepEqual(rec.get("arg"), ["run", "--preset", "vllm"]);
    // Same pid: bash exec'd the binary (no wrapper left to eat signals).
    assert.deepEqual(rec.get("pid"), [String(run.pid)]);
    assert.deepEqual(rec.get("cwd"), [`${dir}/cache`]);
    assert.deepEqual(rec.get("nofile"), [await hardNofile()]);
    assert.deepEqual(rec.get("report"), [env.REPORT_ADDR]);
    assert.deepEqual(await cached(dir), [`edgeworker-${sha}`]);
    assert.deepEqual([...a.reports(), ...b.reports()], []);
  });
});

Deno.test("a bad checksum is reported to every REPORT_ADDR, nothing runs or is kept, exit 1", async () => {
  await withSetup(standIn, async ({ dir, sha, files, a, b, env }) => {
    const wrong = "0".repeat(64);
    const run = await start(dir, { ...env, EDGEWORKER_SHA256: wrong });
    assert.equal(run.code, 1);
    assert.equal(run.record, undefined);
    assert.equal(files.seen.length, 1);
    assert.equal(
      reported(a, b),
      `edgeworker start: checksum mismatch for ${files.url}/edgeworker: expected ${wrong}, got ${sha} (not run)`,
    );
    assert.deepEqual(await cached(dir), []);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/cache`)), []);
  });
});

Deno.test("an unreachable download runs the cached verified copy; without one it is reported", async () => {
  await withSetup(standIn, async ({ dir, sha, files, a, b, env }) => {
    const first = await start(dir, env);
    assert.equal(first.code, 7, first.stderr);
    const down = {
      ...env,
      EDGEWORKER_URL: `http://127.0.0.1:${freePort()}/edgeworker`,
    };
    const again = await start(dir, down);
    assert.equal(again.code, 7, again.stderr);
    assert.deepEqual(again.record!.get("arg"), ["run", "--preset", "vllm"]);
    assert.match(
      again.stderr,
      /using the verified copy .*edgeworker-[0-9a-f]{64}/,
    );
    // A cached copy that no longer matches is never run: it is fetched again.
    await Deno.writeTextFile(`${dir}/cache/edgeworker-${sha}`, "tampered", {
      append: true,
    });
    const refetched = await start(dir, env);
    assert.equal(refetched.code, 7, refetched.stderr);
    assert.equal(files.seen.length, 2);
    assert.deepEqual([...a.reports(), ...b.reports()], []);

    const fresh = `${dir}/fresh`;
    await Deno.mkdir(fresh);
    const none = await start(fresh, down);
    assert.equal(none.code, 1);
    assert.equal(none.record, undefined);
    assert.match(
      reported(a, b),
      /^edgeworker start: download of http:\/\/127\.0\.0\.1:\d+\/edgeworker failed and no verified copy is cached: curl: \(7\) .*127\.0\.0\.1/,
    );
  });
});

Deno.test("a verified binary that cannot be executed is reported, exit 1", async () => {
  // Right checksum, wrong format (as a binary for another architecture).
  const garbage = new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 0, 0, 1, 2, 3]);
  await withSetup(garbage, async ({ dir, a, b, env }) => {
    const run = await start(dir, env);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /cannot execute binary file/);
    assert.match(
      reported(a, b),
      /^edgeworker start: cannot run .*edgeworker-[0-9a-f]{64} \(exit 126\) on Linux \S+: not a binary for this machine\?$/,
    );
  });
});

Deno.test("missing or malformed settings are reported by name", async () => {
  await withSetup(standIn, async ({ dir, a, b, env }) => {
    const cases: [Record<string, string>, string][] = [
      [
        { EDGEWORKER_URL: "" },
        "EDGEWORKER_URL must be set (the release binary to download)",
      ],
      [
        { EDGEWORKER_SHA256: "abc" },
        "EDGEWORKER_SHA256 must be the 64-hex-digit SHA-256 of the binary, got 'abc'",
      ],
      [{ BACKEND: "" }, "BACKEND must be set (the preset to run)"],
    ];
    for (const [patch, message] of cases) {
      a.seen.length = 0;
      b.seen.length = 0;
      const run = await start(dir, { ...env, ...patch });
      assert.equal(run.code, 1);
      assert.equal(reported(a, b), `edgeworker start: ${message}`);
    }
  });
});

Deno.test("USE_SSL=true gets the certificate signed as Vast's start_server.sh does, then runs", async () => {
  await withSetup(standIn, async ({ dir, a, b, env }) => {
    const signer = serve(() =>
      new Response(
        "-----BEGIN CERTIFICATE-----\nsigned\n-----END CERTIFICATE-----\n",
      )
    );
    try {
      const tls = {
        ...env,
        USE_SSL: "true",
        EDGEWORKER_SIGN_CERT_URL: `${signer.url}/api/v0/sign_cert/`,
        EDGEWORKER_TLS_CERT: `${dir}/instance.crt`,
        EDGEWORKER_TLS_KEY: `${dir}/instance.key`,
      };
      const run = await start(dir, tls);
      assert.equal(run.code, 7, run.stderr);
      assert.deepEqual(run.record!.get("ssl"), ["true"]);
      assert.equal(signer.seen.length, 1);
      assert.equal(signer.seen[0].path, "/api/v0/sign_cert/");
      assert.equal(signer.seen[0].query, "?instance_id=42");
      // The body is the CSR: CN pyworker.vast.ai, SAN IP 0.0.0.0.
      await Deno.writeFile(`${dir}/got.csr`, signer.seen[0].body);
      const csr = await new Deno.Command("openssl", {
        args: [
          "req",
          "-in",
          `${dir}/got.csr`,
          "-noout",
          "-subject",
          "-text",
          "-verify",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(csr.stdout);
      assert.equal(csr.code, 0, new TextDecoder().decode(csr.stderr));
      assert.match(text, /CN ?= ?pyworker\.vast\.ai/);
      assert.match(text, /IP Address:0\.0\.0\.0/);
      assert.match(await Deno.readTextFile(`${dir}/instance.crt`), /signed/);
      assert.equal(
        (await Deno.stat(`${dir}/instance.key`)).mode! & 0o777,
        0o600,
      );
      assert.deepEqual([...a.reports(), ...b.reports()], []);

      // A signer that keeps failing: every try made, then reported.
      const refusing = serve(() => new Response("no", { status: 500 }));
      try {
        const failed = await start(dir, {
          ...tls,
          EDGEWORKER_SIGN_CERT_URL: `${refusing.url}/api/v0/sign_cert/`,
          EDGEWORKER_SIGN_RETRIES: "2",
          EDGEWORKER_RETRY_DELAY: "0",
        });
        assert.equal(failed.code, 1);
        assert.equal(failed.record, undefined);
        assert.equal(refusing.seen.length, 2);
        assert.equal(
          reported(a, b, "https"),
          "edgeworker start: cannot get the TLS certificate signed after 2 tries (HTTP 500)",
        );
      } finally {
        await refusing.close();
      }
    } finally {
      await signer.close();
    }
  });
});
