/**
 * Opening the worker's ports: TLS files read and checked, connection
 * timeouts from the environment, and errors that name the setting and files
 * involved.
 *
 * @module
 */
import type { WorkerEnv } from "../config/env.ts";
import {
  type ConnectionTimeouts,
  serveConnections,
  type ServeOptions,
  type Server,
} from "./connections.ts";

export type { Server } from "./connections.ts";

/**
 * Serves `handler` with the connection limits of
 * {@linkcode serveConnections}; the error names the setting when the port
 * is taken.
 */
export function listen(
  options: ServeOptions,
  handler: Deno.ServeHandler<Deno.NetAddr>,
  setting: string,
): Server {
  try {
    return serveConnections(options, handler);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new Error(
      `Cannot listen on ${options.hostname}:${options.port} (${setting}): ${why}`,
    );
  }
}

/** The connection timeouts of the `EDGEWORKER_*_SECONDS` settings. */
export function connectionTimeouts(env: WorkerEnv): ConnectionTimeouts {
  return {
    headersTimeoutMs: env.EDGEWORKER_HEADERS_SECONDS * 1000,
    keepAliveTimeoutMs: env.EDGEWORKER_KEEPALIVE_SECONDS * 1000,
    bodyTimeoutMs: env.EDGEWORKER_BODY_SECONDS * 1000,
  };
}

/** Reads and checks the TLS files of `USE_SSL=true`. */
export async function readTls(
  env: WorkerEnv,
): Promise<{ cert: string; key: string }> {
  const read = async (path: string, what: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      throw new Error(
        `USE_SSL=true but the TLS ${what} ${path} cannot be read: ${
          e instanceof Error ? e.message : String(e)
        }`,
      );
    }
  };
  const cert = await read(env.EDGEWORKER_TLS_CERT, "certificate");
  const key = await read(env.EDGEWORKER_TLS_KEY, "key");
  if (!cert.includes("-----BEGIN CERTIFICATE-----")) {
    throw new Error(
      `USE_SSL=true but ${env.EDGEWORKER_TLS_CERT} holds no PEM certificate`,
    );
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) {
    throw new Error(
      `USE_SSL=true but ${env.EDGEWORKER_TLS_KEY} holds no PEM private key`,
    );
  }
  return { cert, key };
}
