/**
 * Fake autoscaler (`/route/`) and fake worker for the client tests, both
 * real HTTP servers on 127.0.0.1 port 0.
 *
 * @module
 */

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
  routeCalls: Recorded[];
  workerCalls: Recorded[];
  sessionEnds: Recorded[];
  /** Forget all sessions (the next session request gets 410). */
  dropSessions(): void;
  close(): Promise<void>;
}

const encoder = new TextEncoder();

/** Sleeps `ms`, or rejects when `signal` aborts (client went away). */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A response whose body is `chunks`, sent `gapMs` apart. */
function spaced(
  chunks: string[],
  gapMs: number,
  signal: AbortSignal,
  type: string,
): Response {
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller): Promise<void> {
      if (i > 0) {
        try {
          await delay(gapMs, signal);
        } catch {
          return; // client went away; the stream is being cancelled
        }
      }
      if (i >= chunks.length) controller.close();
      else controller.enqueue(encoder.encode(chunks[i++]));
    },
  });
  return new Response(body, { headers: { "content-type": type } });
}

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

/** Handles model routes after the envelope checks. */
async function model(
  path: string,
  payload: Record<string, unknown>,
  req: Request,
  gapMs: number,
  counts: Map<string, number>,
): Promise<Response> {
  const n = (counts.get(path) ?? 0) + 1;
  counts.set(path, n);
  const { signal } = req;
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
      try {
        await delay(2000, signal);
      } catch {
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

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Starts a fake autoscaler and a fake worker. */
export function startFakeVast(options: FakeVastOptions = {}): FakeVast {
  const waits = options.waits ?? 2;
  const gapMs = options.gapMs ?? 80;
  const routeCalls: Recorded[] = [];
  const workerCalls: Recorded[] = [];
  const sessionEnds: Recorded[] = [];
  const waitsLeft = new Map<number, number>();
  const sessions = new Map<string, string>();
  const counts = new Map<string, number>();
  let nextIdx = 1000;
  let nextSession = 0;
  const noop = (): void => {};

  const worker = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: noop },
    async (req) => {
      const path = new URL(req.url).pathname;
      const body = await req.json().catch(() => undefined);
      if (!isRecord(body)) {
        return Response.json({ error: "invalid JSON" }, {
          status: 422,
        });
      }
      const rec = {
        path,
        authorization: req.headers.get("authorization"),
        body,
      };
      if (path === "/session/end") {
        sessionEnds.push(rec);
        const id = String(body.session_id);
        if (!sessions.has(id)) {
          return Response.json({ error: "not found" }, {
            status: 400,
          });
        }
        if (
          sessions.get(id) !== JSON.stringify(body.session_auth)
        ) return Response.json({ error: "unauthorized" }, { status: 401 });
        sessions.delete(id);
        return Response.json({ ended: true, removed_session: id });
      }
      workerCalls.push(rec);
      const auth = body.auth_data;
      if (
        !isRecord(auth) || typeof auth.url !== "string" ||
        typeof auth.request_idx !== "number"
      ) {
        return Response.json({ auth_data: "field missing" }, { status: 422 });
      }
      if (!("payload" in body) || !("session_id" in body)) {
        return Response
          .json({ payload: "field missing" }, { status: 422 });
      }
      const payload = isRecord(body.payload) ? body.payload : {};
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
      return await model(path, payload, req, gapMs, counts);
    },
  );
  const workerUrl = `http://127.0.0.1:${worker.addr.port}`;

  const route = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: noop },
    async (req) => {
      const body = await req.json();
      routeCalls.push({
        path: new URL(req.url).pathname,
        authorization: req.headers.get("authorization"),
        body,
      });
      if (options.routeStatus) {
        return new Response("route says no", {
          status: options.routeStatus,
        });
      }
      let idx = Number(body.request_idx);
      if (idx === 0) {
        idx = nextIdx++;
        waitsLeft.set(idx, waits);
      }
      const left = waitsLeft.get(idx) ?? 0;
      if (left > 0) {
        waitsLeft.set(idx, left - 1);
        return Response.json({
          endpoint: body.endpoint,
          status: "waiting",
          request_idx: idx,
        });
      }
      return Response.json({
        __request_id: crypto.randomUUID(),
        cost: body.cost,
        endpoint: body.endpoint,
        reqnum: idx + 1,
        request_idx: idx,
        signature: "c2lnbmF0dXJl",
        url: workerUrl,
      });
    },
  );

  return {
    routeUrl: `http://127.0.0.1:${route.addr.port}`,
    workerUrl,
    routeCalls,
    workerCalls,
    sessionEnds,
    dropSessions: () => sessions.clear(),
    close: async () => {
      await Promise.all([worker.shutdown(), route.shutdown()]);
    },
  };
}
