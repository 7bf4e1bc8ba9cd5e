/**
 * The autoscaler and worker of the client tests: the control-plane stand-in
 * (`dev/control_plane.ts`) hands out the scripted upstream
 * (`tests/helpers/upstream.ts`), scripted here as a worker that checks the
 * envelope, keeps sessions and serves a few model routes.
 *
 * @module
 */
import { sleep } from "../dev/_async.ts";
import { isObject } from "../dev/_serve.ts";
import { type ControlPlane, startControlPlane } from "../dev/control_plane.ts";
import type { EdgeworkerClientOptions } from "../client.ts";
import { controlPlaneKeys } from "./helpers/dev.ts";
import {
  type ScriptedRequest,
  spacedStream,
  startUpstream,
} from "./helpers/upstream.ts";

/** One request received by a fake. */
export interface Recorded {
  path: string;
  authorization: string | null;
  body: Record<string, unknown>;
}

/** Options of {@linkcode startFakeVast}. */
export interface FakeVastOptions {
  /** "waiting" answers per new request before a url. Default 2. */
  waits?: number;
  /** Status `/route/` answers with instead of routing. */
  routeStatus?: number;
  /** Gap between streamed chunks in ms. Default 80. */
  gapMs?: number;
}

/** A running fake autoscaler + worker. */
export interface FakeVast {
  routeUrl: string;
  workerUrl: string;
  /** The control plane behind `routeUrl` (it signs `/route/` answers). */
  cp: ControlPlane;
  readonly routeCalls: Recorded[];
  workerCalls: Recorded[];
  sessionEnds: Recorded[];
  /** Forget all sessions (the next session request gets 410). */
  dropSessions(): void;
  close(): Promise<void>;
}

let keys: Promise<CryptoKeyPair> | undefined;

function openAIError(message: string): Response {
  const error = {
    message,
    type: "invalid_request_error",
    param: "model",
    code: null,
  };
  return Response.json({ error }, { status: 400 });
}

function chatChunk(i: number, content: string): string {
  const delta = i === 0 ? { role: "assistant", content } : { content };
  const chunk = {
    id: "chatcmpl-1",
    object: "chat.completion.chunk",
    created: 1,
    model: "fake",
    choices: [{ index: 0, delta, finish_reason: null }],
  };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

/** A response whose body is `chunks`, sent `gapMs` apart. */
function spaced(
  chunks: string[],
  gapMs: number,
  signal: AbortSignal,
  type: string,
): Response {
  return new Response(spacedStream(chunks, gapMs, signal), {
    headers: { "content-type": type },
  });
}

/** Handles model routes after the envelope checks. */
async function model(
  path: string,
  payload: Record<string, unknown>,
  signal: AbortSignal,
  gapMs: number,
  counts: Map<string, number>,
): Promise<Response> {
  const n = (counts.get(path) ?? 0) + 1;
  counts.set(path, n);
  if (payload.model === "bad") {
    return openAIError("The model `bad` does not exist.");
  }
  switch (path) {
    case "/echo":
      return Response.json({ ok: true });
    case "/flaky429":
      return n === 1
        ? new Response("busy", {
          status: 429,
          headers: { "retry-after": "0.1" },
        })
        : Response.json({ n });
    case "/always503":
      return new Response("down", { status: 503 });
    case "/bad400":
      return openAIError("bad request body");
    case "/slow":
      if (!await sleep(2000, signal)) {
        return new Response(null, { status: 499 });
      }
      return Response.json({ slow: true });
    case "/sse":
      return spaced(
        [
          ": keep-alive\n\n",
          'data: {"i":0}\r\n\r\n',
          'data: {"i"',
          ':1}\n\ndata: {"i":2}\n',
          "\ndata: [DONE]\n\n",
        ],
        gapMs,
        signal,
        "text/event-stream",
      );
    case "/jsonl":
      return spaced(
        ['{"i":0}\n', '{"i":1}\n{"i"', ":2}"],
        gapMs,
        signal,
        "application/x-ndjson",
      );
    case "/v1/completions":
      return Response.json({
        id: "cmpl-1",
        object: "text_completion",
        created: 1,
        model: "fake",
        choices: [{
          index: 0,
          text: `echo:${payload.prompt}`,
          finish_reason: "stop",
          logprobs: null,
        }],
      });
    case "/v1/chat/completions": {
      if (payload.stream) {
        const words = ["Hello", " there", ",", " friend", "!"];
        return spaced(
          [...words.map((w, i) => chatChunk(i, w)), "data: [DONE]\n\n"],
          gapMs,
          signal,
          "text/event-stream",
        );
      }
      const message = { role: "assistant", content: "Hello there, friend!" };
      return Response.json({
        id: "chatcmpl-1",
        object: "chat.completion",
        created: 1,
        model: "fake",
        choices: [{ index: 0, message, finish_reason: "stop", logprobs: null }],
        usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
      });
    }
    default:
      return new Response("no such route", { status: 404 });
  }
}

/** The worker's side: envelope checks, sessions, then the model routes. */
function workerScript(
  fake: Pick<FakeVast, "workerCalls" | "sessionEnds">,
  sessions: Map<string, string>,
  gapMs: number,
): (r: ScriptedRequest) => Promise<Response> {
  const counts = new Map<string, number>();
  let nextSession = 0;
  return async ({ path, body, req, signal }) => {
    if (!isObject(body)) {
      return Response.json({ error: "invalid JSON" }, { status: 422 });
    }
    const rec = {
      path,
      authorization: req.headers.get("authorization"),
      body,
    };
    if (path === "/session/end") {
      fake.sessionEnds.push(rec);
      const id = String(body.session_id);
      if (!sessions.has(id)) {
        return Response.json({ error: "not found" }, { status: 400 });
      }
      if (sessions.get(id) !== JSON.stringify(body.session_auth)) {
        return Response.json({ error: "unauthorized" }, { status: 401 });
      }
      sessions.delete(id);
      return Response.json({ ended: true, removed_session: id });
    }
    fake.workerCalls.push(rec);
    const auth = body.auth_data;
    if (
      !isObject(auth) || typeof auth.url !== "string" ||
      typeof auth.request_idx !== "number"
    ) {
      return Response.json({ auth_data: "field missing" }, { status: 422 });
    }
    if (!("payload" in body) || !("session_id" in body)) {
      return Response.json({ payload: "field missing" }, { status: 422 });
    }
    const payload = isObject(body.payload) ? body.payload : {};
    if (path === "/session/create") {
      const id = `sess${nextSession++}`;
      sessions.set(id, JSON.stringify(auth));
      return Response.json({ session_id: id, expiration: 1e10 }, {
        status: 201,
      });
    }
    if (body.session_id !== null && !sessions.has(String(body.session_id))) {
      return Response.json({ error: "invalid session" }, { status: 410 });
    }
    return await model(path, payload, signal, gapMs, counts);
  };
}

/** Starts a fake autoscaler and a fake worker. */
export async function startFakeVast(
  options: FakeVastOptions = {},
): Promise<FakeVast> {
  keys ??= controlPlaneKeys();
  const sessions = new Map<string, string>();
  const calls = {
    workerCalls: [] as Recorded[],
    sessionEnds: [] as Recorded[],
  };
  const worker = startUpstream({
    script: workerScript(calls, sessions, options.gapMs ?? 80),
  });
  const cp = await startControlPlane({
    keyPair: await keys,
    workerUrl: worker.url,
    waitsPerRequest: options.waits ?? 2,
  });
  if (options.routeStatus) {
    cp.setRouteReply({ status: options.routeStatus, text: "route says no" });
  }
  return {
    routeUrl: cp.url,
    workerUrl: worker.url,
    cp,
    get routeCalls(): Recorded[] {
      return cp.routeRequests.map((r) => ({
        path: "/route/",
        authorization: r.headers.get("authorization"),
        body: r.body as Record<string, unknown>,
      }));
    },
    ...calls,
    dropSessions: () => sessions.clear(),
    close: async () => {
      await Promise.all([worker.close(), cp.close()]);
    },
  };
}

/**
 * Runs `fn` with a fake autoscaler and worker started with `options`;
 * closes them afterwards.
 */
export async function withFakeVast(
  options: FakeVastOptions,
  fn: (fake: FakeVast) => Promise<void>,
): Promise<void> {
  const fake = await startFakeVast(options);
  try {
    await fn(fake);
  } finally {
    await fake.close();
  }
}

/**
 * Client options that route through `fake` with the client tests' fast
 * polling and backoff; `extra` on top.
 */
export function fakeClientOptions<T extends EdgeworkerClientOptions>(
  fake: FakeVast,
  extra: Partial<T> = {},
): EdgeworkerClientOptions & Partial<T> {
  return {
    routeUrl: fake.routeUrl,
    endpoint: "ep",
    apiKey: "key",
    backoff: { initialMs: 10, maxMs: 50 },
    routePollMaxMs: 20,
    ...extra,
  };
}
