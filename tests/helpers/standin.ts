/**
 * A stand-in model server for readiness tests: `GET /health` answers as
 * told (any status, or never), and `POST /work` serves a
 * request of workload `w` in `w / rate` seconds with unlimited slots.
 */

/** Options of {@linkcode startStandIn}. */
export interface StandInOptions {
  /** Port to listen on (0: a free one). */
  port?: number;
  /** Workload units per second per request. @default {50} */
  rate?: number;
  /** Status of `GET /health` answers. @default {200} */
  healthStatus?: number;
  /** `GET /health` never answers (until the client goes away). */
  hangHealth?: boolean;
  /** Status of `POST /work` answers. @default {200} */
  workStatus?: number;
}

/** A running stand-in; its settings may be changed while it runs. */
export interface StandIn {
  readonly url: string;
  readonly port: number;
  /** Workload units per second per request; change it to change the rate. */
  rate: number;
  /** Status of `POST /work` answers. */
  workStatus: number;
  /** Status of `GET /health` answers. */
  healthStatus: number;
  /** `GET /health` never answers (until the client goes away). */
  hangHealth: boolean;
  /** `GET /health` probes received. */
  healthProbes: number;
  /** `POST /work` requests received. */
  workRequests: number;
  /** `POST /work` bodies with `hold: true` wait until the client leaves. */
  held: number;
  /** Stops listening (waits for answers in progress). */
  close(): Promise<void>;
}

/** Starts the stand-in on 127.0.0.1. */
export function startStandIn(options: StandInOptions = {}): StandIn {
  const state = {
    url: "",
    port: 0,
    rate: options.rate ?? 50,
    workStatus: options.workStatus ?? 200,
    healthStatus: options.healthStatus ?? 200,
    hangHealth: options.hangHealth ?? false,
    healthProbes: 0,
    workRequests: 0,
    held: 0,
    close: () => server.shutdown(),
  };
  const untilGone = (signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: options.port ?? 0, onListen: () => {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      if (req.method === "GET" && path === "/health") {
        state.healthProbes++;
        if (state.hangHealth) {
          await untilGone(req.signal);
          return new Response(null, { status: 504 });
        }
        const ok = state.healthStatus === 200;
        return Response.json({ status: ok ? "ok" : "loading" }, {
          status: state.healthStatus,
        });
      }
      if (req.method === "POST" && path === "/work") {
        const body = await req.json() as { w?: number; hold?: boolean };
        state.workRequests++;
        if (body.hold) {
          state.held++;
          await untilGone(req.signal);
          state.held--;
          return new Response(null, { status: 499 });
        }
        const ms = (Number(body.w ?? 0) / state.rate) * 1000;
        await new Promise((r) => setTimeout(r, ms));
        return Response.json({ w: body.w ?? 0 }, { status: state.workStatus });
      }
      return Response.json({ error: "no such route" }, { status: 404 });
    },
  );
  state.port = server.addr.port;
  state.url = `http://127.0.0.1:${state.port}`;
  return state;
}
