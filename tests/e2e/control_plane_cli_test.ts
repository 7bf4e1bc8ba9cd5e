/**
 * `edgeworker control-plane` as a person starts it to debug a real
 * instance: it prints where it listens, answers `/pubkey/`, says on its
 * console what is wrong with a report (and answers 422), and stops on
 * Ctrl-C. Bad numbers on the command line exit 2 naming the option.
 *
 * @module
 */
import assert from "node:assert/strict";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

function edgeworker(args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  });
}

Deno.test("edgeworker control-plane serves, reports bad reports on its console, stops on SIGINT", async () => {
  const child = edgeworker(["control-plane", "--port", "0"]).spawn();
  let out = "";
  const reading = (async () => {
    for await (const c of child.stdout.pipeThrough(new TextDecoderStream())) {
      out += c;
    }
  })();
  const stderr = new Response(child.stderr).text();
  const until = async (re: RegExp) => {
    for (let i = 0; i < 300 && !re.test(out); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const m = out.match(re);
    assert.ok(m, `no ${re} in:\n${out}`);
    return m;
  };
  try {
    const [, url] = await until(/live page: (http:\/\/127\.0\.0\.1:\d+)\//);
    assert.match(out, /REPORT_ADDR=http:\/\/127\.0\.0\.1:\d+/);
    const pem = await (await fetch(`${url}/pubkey/`)).text();
    assert.match(pem, /^-----BEGIN PUBLIC KEY-----\n/);
    const res = await fetch(`${url}/worker_status/`, {
      method: "POST",
      body: JSON.stringify({ id: 1, cur_load: "lots" }),
    });
    assert.equal(res.status, 422);
    assert.equal((await res.json()).field, "mtoken");
    await until(/invalid worker_status: mtoken: missing; version: missing/);
    assert.match(out, /cur_load: expected a finite number/);
    const page = await fetch(`${url}/`);
    assert.match(await page.text(), /<title>edgeworker control plane<\/title>/);
  } finally {
    child.kill("SIGINT");
    const status = await child.status;
    await reading;
    assert.equal(status.code, 0, await stderr);
  }
});

Deno.test("bad demo and control-plane numbers exit 2 naming the option", async () => {
  for (
    const [args, message] of [
      [
        ["demo", "--workers", "0"],
        /--workers must be an integer from 1 to 64, got "0"/,
      ],
      [["demo", "--workers", "two"], /--workers must be an integer/],
      [
        ["control-plane", "--port", "70000"],
        /--port must be an integer from 0 to 65535/,
      ],
    ] as const
  ) {
    const out = await edgeworker([...args]).output();
    assert.equal(out.code, 2, args.join(" "));
    assert.match(new TextDecoder().decode(out.stderr), message);
  }
});
