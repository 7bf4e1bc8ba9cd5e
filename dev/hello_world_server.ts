/**
 * A stand-in for the model server of the legacy PyWorker "hello world"
 * tutorial (the `hello_world` preset): `POST /generate` and
 * `POST /generate_stream` (SSE, one `{"token"}` event per token) taking
 * `{"prompt", "max_response_tokens"}`, `GET /health`, and the tutorial's
 * log lines (`infer server has started`; `Exception: corrupted model file`
 * when it crashes).
 *
 * @example
 * ```ts
 * const model = await startHelloWorldServer({ logFile: "/tmp/infer.log" });
 * const r = await fetch(`${model.url}/generate`, {
 *   method: "POST",
 *   body: JSON.stringify({ prompt: "Hi", max_response_tokens: 3 }),
 * });
 * await r.json(); // { response: "hello from the", tokens: 3 }
 * await model.close();
 * ```
 *
 * @module
 */

import { sleep } from "./_async.ts";
import {
  eventStream,
  isObject,
  json,
  readJson,
  type RequestScope,
  type RunOutcome,
} from "./_serve.ts";
import {
  launch,
  StandIn,
  type StandInOptions,
  type StandInServer,
} from "./_standin.ts";

/** Options of {@linkcode startHelloWorldServer}. */
export interface HelloWorldServerOptions extends StandInOptions {
  /** Milliseconds per generated token. @default 1 */
  msPerToken?: number;
}

/** Handle of a running tutorial stand-in; its inference requests are the
 * POSTs to the two generation routes. */
export type HelloWorldServer = StandInServer;

const WORDS = ["hello", " from", " the", " tutorial", " model", " server"];
const FATAL = [
  "Traceback (most recent call last):",
  "Exception: corrupted model file",
];

/** Starts the stand-in; resolves once it listens and logged its start. */
export function startHelloWorldServer(
  options: HelloWorldServerOptions = {},
): Promise<HelloWorldServer> {
  return launch(() => new HelloWorldStandIn(options));
}

class HelloWorldStandIn extends StandIn<HelloWorldServerOptions> {
  constructor(opts: HelloWorldServerOptions) {
    super(opts);
    this.start(() => ["loading model weights from /models/hello.bin"]);
  }

  override crash(): Promise<void> {
    return this.crashWith(FATAL);
  }

  protected override failStartup(): void {
    this.log.write(...FATAL);
    void this.close();
  }

  protected override logReady(): void {
    this.log.write("infer server has started");
  }

  protected override async route(
    req: Request,
    scope: RequestScope,
  ): Promise<Response> {
    const path = new URL(req.url).pathname;
    if (req.method === "GET" && path === "/health") {
      return this.ready
        ? json({ status: "ok" })
        : json({ status: "loading" }, 503);
    }
    const stream = path === "/generate_stream";
    if (req.method !== "POST" || (path !== "/generate" && !stream)) {
      return json({ error: "not found" }, 404);
    }
    const body = await readJson(req);
    this.countRequest();
    this.noteBody(body);
    if (!isObject(body) || typeof body.prompt !== "string") {
      this.countFinished();
      return json({ error: "prompt required" }, 422);
    }
    const n = Number(body.max_response_tokens ?? 16);
    const tokens = Array.from({ length: n }, (_, i) => WORDS[i % WORDS.length]);
    if (stream) return this.#stream(tokens, scope);
    const outcome = await this.#generate(tokens, scope, () => {});
    if (outcome !== "ok") {
      return new Response(null, { status: outcome === "client" ? 499 : 500 });
    }
    return json({ response: tokens.join(""), tokens: n });
  }

  #stream(tokens: string[], scope: RequestScope): Response {
    const enc = new TextEncoder();
    const body = eventStream(scope, async (send) => {
      const outcome = await this.#generate(tokens, scope, (token) => {
        send(enc.encode(`data: ${JSON.stringify({ token })}\n\n`));
      });
      if (outcome === "ok") send(enc.encode("data: [DONE]\n\n"));
      return outcome;
    });
    return new Response(body, {
      headers: { "content-type": "text/event-stream" },
    });
  }

  /** Produces `tokens`, one every `msPerToken`, and counts how it ended. */
  async #generate(
    tokens: string[],
    scope: RequestScope,
    onToken: (token: string) => void,
  ): Promise<RunOutcome> {
    const ms = this.opts.msPerToken ?? 1;
    let outcome: RunOutcome = "ok";
    for (const token of tokens) {
      onToken(token);
      if (!await sleep(ms, scope.signal)) {
        outcome = scope.clientGone() ? "client" : "killed";
        break;
      }
    }
    if (outcome === "client") this.countAborted();
    this.countFinished();
    return outcome;
  }
}
