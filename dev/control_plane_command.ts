/**
 * `edgeworker control-plane`: the local control plane alone, strict about
 * reports and saying on the console what is wrong with each bad one, until
 * Ctrl-C. A real instance's `REPORT_ADDR` can point at it (through a
 * tunnel, or with `--host 0.0.0.0`) to watch that worker on the live page.
 *
 * @module
 */
import { untilSignal } from "./_async.ts";
import { startControlPlane } from "./control_plane.ts";

/** `edgeworker control-plane`: the control plane alone, until Ctrl-C. */
export async function runControlPlane(
  options: { port?: number; hostname?: string; maxQueueTime?: number } = {},
): Promise<number> {
  const cp = await startControlPlane({
    port: options.port ?? 8080,
    hostname: options.hostname,
    maxQueueTime: options.maxQueueTime,
    strict: true,
    historyLimit: 10_000,
    // Say what is wrong with a report as soon as one comes.
    onInvalid: (kind, r) =>
      console.log(
        `invalid ${kind === "status" ? "worker_status" : "delete_requests"}: ${
          r.problems.map((p) => `${p.field}: ${p.error}`).join("; ")
        }`,
      ),
  });
  const host = options.hostname ?? "127.0.0.1";
  console.log(
    [
      `edgeworker control plane on ${host}:${cp.port}`,
      `  live page: ${cp.url}/`,
      `  point a worker at it: REPORT_ADDR=${cp.url} (a remote instance needs --host 0.0.0.0 or a tunnel)`,
      "Press Ctrl-C to stop.",
    ].join("\n"),
  );
  await untilSignal();
  await cp.close();
  return 0;
}
