/**
 * The chaos ingredients: each one is a kind of request (or of client
 * misbehaviour) with its weight in the mix and a `run` that sends it and
 * judges what the client saw, saying how the worker must report it.
 * `--only` / `--without` pick ingredients by name or group, so one
 * ingredient at a time can be blamed for a broken invariant.
 *
 * @module
 */
import {
  checkWorkerAnswer,
  envelopeText,
  errorText,
  type Expected,
  expectWorkerError,
  isAbort,
  payloadOf,
  readBody,
  readEventsThenLeave,
  relayed,
  type RequestCtx,
  send,
  type Verdict,
} from "./client.ts";
import { holdIdleConnections, rawRequest } from "./raw_client.ts";

/** Groups, for `--only model` etc. */
export type IngredientGroup = "normal" | "model" | "client" | "input" | "auth";

/** One kind of request in the mix. */
export interface Ingredient {
  name: string;
  group: IngredientGroup;
  /** Relative frequency in the mix. */
  weight: number;
  /** One line for `--list` and the books table. */
  about: string;
  /** Route override (else the mix picks one). */
  route?: string;
  run(ctx: RequestCtx): Promise<Verdict>;
}

const enc = new TextEncoder();

/**
 * Offset of the `request_idx` of helper requests an ingredient sends
 * besides its own (the first request of a keep-alive connection): they
 * are reported too, and the books count them apart.
 */
export const WARM_IDX = 10_000_000;

/** Judges an answer that should be the model's, relayed with `status`. */
async function expectRelayed(
  res: Response,
  status: number,
  record: readonly Expected[],
  check: (text: string, broke: boolean) => string[] = () => [],
): Promise<Verdict> {
  const { text, broke } = await readBody(res);
  if (!relayed(res)) {
    return {
      record: "any",
      seen: `${res.status} from worker`,
      problems: [
        `expected the model's ${status}, got the worker's ${res.status}: ${
          text.slice(0, 120)
        }`,
      ],
    };
  }
  const problems = res.status === status
    ? check(text, broke)
    : [`relayed ${res.status}, model sent ${status}`];
  if (broke && problems.length === 0 && record.includes("Success")) {
    problems.push("body broke off");
  }
  return { record, seen: `${res.status} relayed`, problems };
}

/** Judges an answer the worker should write itself (model broke). */
function expectModelFailure(
  res: Response,
  statuses: readonly number[],
): Promise<Verdict> {
  return expectWorkerError(res, statuses, ["Error"]);
}

/** Sends a valid envelope with `chaos` and judges it with `judge`. */
async function call(
  ctx: RequestCtx,
  chaos: string,
  judge: (res: Response) => Promise<Verdict>,
  extra: Record<string, unknown> = {},
): Promise<Verdict> {
  return await sendText(
    ctx,
    envelopeText(ctx, payloadOf(ctx, chaos, extra)),
    judge,
  );
}

/** Sends `text` and judges the answer; a fetch that threw gets `failed`. */
async function sendText(
  ctx: RequestCtx,
  text: string,
  judge: (res: Response) => Promise<Verdict>,
  failed: (e: unknown) => Verdict = fetchFailed,
): Promise<Verdict> {
  try {
    return await judge(await send(ctx, text));
  } catch (e) {
    return failed(e);
  }
}

/** Sends `chaos` (a stream), reads `k` events and leaves. */
async function leaveAfterEvents(
  ctx: RequestCtx,
  chaos: string,
  k: number,
): Promise<Verdict> {
  const abort = new AbortController();
  try {
    const res = await send(
      ctx,
      envelopeText(ctx, payloadOf(ctx, chaos)),
      { signal: abort.signal },
    );
    if (!relayed(res)) {
      const { text } = await readBody(res);
      return {
        record: "any",
        seen: `${res.status} from worker`,
        problems: [
          `expected a stream, got ${res.status}: ${text.slice(0, 80)}`,
        ],
      };
    }
    const got = await readEventsThenLeave(res, k, abort);
    return {
      record: ["Cancelled"],
      seen: `left after ${got}`,
      problems: got === k ? [] : [`${got} of ${k} events before leaving`],
    };
  } catch (e) {
    return leftOrFailed(e);
  }
}

/** The model's 200 relayed and recorded as a success. */
/**
 * An "ok" envelope with the number literal `raw` written as is for
 * `field` (JSON.stringify cannot write 1e400 or 2^64+1), relayed with 200.
 */
function sendOkWithNumber(
  ctx: RequestCtx,
  field: string,
  raw: string,
): Promise<Verdict> {
  const text = envelopeText(ctx, payloadOf(ctx, "ok"))
    .replace(new RegExp(`"${field}":\\d+`), `"${field}":${raw}`);
  return sendText(ctx, text, relayedOk);
}

function relayedOk(res: Response): Promise<Verdict> {
  return expectRelayed(res, 200, ["Success"]);
}

/** A worker error that the ledger records as a rejection. */
function expectRejected(
  res: Response,
  statuses: readonly number[],
): Promise<Verdict> {
  return expectWorkerError(res, statuses, ["Rejected"]);
}

/** A fetch that threw before any record could open. */
function failedUnrecorded(e: unknown): Verdict {
  return { ...fetchFailed(e), record: "none" };
}

/** The verdict of a fetch that threw: nothing is known of its record. */
function fetchFailed(e: unknown): Verdict {
  return { record: "any", seen: "fetch failed", problems: [errorText(e)] };
}

/** A client that left on purpose (abort) was cancelled; else the fetch failed. */
function leftOrFailed(e: unknown): Verdict {
  return isAbort(e)
    ? { record: ["Cancelled"], seen: "left", problems: [] }
    : fetchFailed(e);
}

/** Leaves after `ms` while the model stalls (fetch, pooled connection). */
async function leaveWhileStalled(
  ctx: RequestCtx,
  chaos: string,
  ms: number,
): Promise<Verdict> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), ms);
  try {
    const res = await send(
      ctx,
      envelopeText(ctx, payloadOf(ctx, chaos)),
      { signal: abort.signal },
    );
    const { text } = await readBody(res);
    return {
      record: "any",
      seen: `${res.status} before leaving`,
      problems: [
        `the stalled model answered ${res.status}: ${text.slice(0, 80)}`,
      ],
    };
  } catch (e) {
    // Left before any answer: maybe before the worker admitted it.
    if (isAbort(e)) {
      return { record: ["Cancelled", "absent"], seen: "left", problems: [] };
    }
    return fetchFailed(e);
  } finally {
    clearTimeout(timer);
  }
}

const events = (text: string) => text.split("\n\n").filter((e) => e).length;

/** Every ingredient, in the order of the books table. */
export const INGREDIENTS: readonly Ingredient[] = [
  {
    name: "ok",
    group: "normal",
    weight: 12,
    about: "JSON answer",
    run: (ctx) =>
      call(ctx, "ok", (res) =>
        expectRelayed(res, 200, ["Success"], (t) => {
          const body = JSON.parse(t);
          return body.idx === ctx.idx ? [] : [`answer of idx ${body.idx}`];
        })),
  },
  {
    name: "stream",
    group: "normal",
    weight: 8,
    about: "SSE stream to [DONE]",
    run: (ctx) => {
      const n = ctx.rng.int(2, 10);
      return call(
        ctx,
        `stream:${n}:${ctx.rng.int(1, 15)}`,
        (res) =>
          expectRelayed(
            res,
            200,
            ["Success"],
            (t) =>
              t.endsWith("data: [DONE]\n\n") && events(t) === n + 1
                ? []
                : [`stream of ${events(t)} events, expected ${n + 1}`],
          ),
      );
    },
  },
  {
    name: "slow",
    group: "normal",
    weight: 4,
    about: "JSON answer after 20-400 ms",
    run: (ctx) =>
      call(
        ctx,
        `slow:${ctx.rng.int(20, 400)}`,
        relayedOk,
      ),
  },
  {
    name: "big_answer",
    group: "normal",
    weight: 2,
    about: "JSON answer of 100 KB-1 MB",
    run: (ctx) => {
      const size = ctx.rng.int(100_000, 1_000_000);
      return call(
        ctx,
        `big:${size}`,
        (res) =>
          expectRelayed(
            res,
            200,
            ["Success"],
            (t) =>
              t.length >= size ? [] : [`answer of ${t.length} bytes < ${size}`],
          ),
      );
    },
  },
  {
    name: "model_error",
    group: "model",
    weight: 4,
    about: "model answers 400/404/418/429/500/503",
    run: (ctx) => {
      const status = ctx.rng.pick([400, 404, 418, 429, 500, 503]);
      return call(
        ctx,
        `status:${status}`,
        // The model's own error is relayed and counts as served, as in Python.
        (res) => expectRelayed(res, status, ["Success"]),
      );
    },
  },
  {
    name: "odd_status",
    group: "model",
    weight: 2,
    about: "model answers status 600/700/999, JSON or a stream",
    run: (ctx) => {
      const form = ctx.rng.pick(["status", "odd-stream"]);
      return call(
        ctx,
        `${form}:${ctx.rng.pick([600, 700, 999])}`,
        (res) => expectModelFailure(res, [502]),
      );
    },
  },
  {
    name: "crash",
    group: "model",
    weight: 2,
    about: "model closes without answering",
    run: (ctx) => call(ctx, "crash", (res) => expectModelFailure(res, [502])),
  },
  {
    name: "crash_headers",
    group: "model",
    weight: 1,
    about: "model closes mid status line",
    run: (ctx) =>
      call(ctx, "crash-headers", (res) => expectModelFailure(res, [502])),
  },
  {
    name: "garbage",
    group: "model",
    weight: 1,
    about: "model answers bytes that are not HTTP",
    run: (ctx) => call(ctx, "garbage", (res) => expectModelFailure(res, [502])),
  },
  {
    name: "break_body",
    group: "model",
    weight: 2,
    about: "model sends 10 of 1000 announced bytes",
    run: (ctx) =>
      call(ctx, "break-body", (res) => expectModelFailure(res, [502])),
  },
  {
    name: "break_stream",
    group: "model",
    weight: 2,
    about: "model stream breaks after 1-4 events",
    run: (ctx) =>
      call(
        ctx,
        `break-stream:${ctx.rng.int(1, 4)}`,
        (res) =>
          expectRelayed(res, 200, ["Error"], (t, broke) =>
            broke || !t.includes("[DONE]")
              ? []
              : ["a broken stream reached [DONE]"]),
      ),
  },
  {
    name: "no_length",
    group: "model",
    weight: 1,
    about: "JSON answer without Content-Length, ended by close",
    run: (ctx) =>
      call(
        ctx,
        "no-length",
        (res) =>
          expectRelayed(res, 200, ["Success"], (t) => {
            try {
              JSON.parse(t);
              return [];
            } catch {
              return [`not the model's JSON: ${t.slice(0, 80)}`];
            }
          }),
      ),
  },
  {
    name: "timeout",
    group: "model",
    weight: 1,
    about: "model stalls, client waits: 504 after timeouts.firstByte",
    run: (ctx) => call(ctx, "stall", (res) => expectModelFailure(res, [504])),
  },
  {
    name: "stall_leave",
    group: "client",
    weight: 3,
    about: "model stalls, client leaves after 20-1500 ms",
    run: (ctx) => leaveWhileStalled(ctx, "stall", ctx.rng.int(20, 1500)),
  },
  {
    name: "stream_leave",
    group: "client",
    weight: 3,
    about: "client leaves a slow stream after 0-5 events",
    run: (ctx) => leaveAfterEvents(ctx, "stream:30:40", ctx.rng.int(0, 5)),
  },
  {
    name: "stall_stream_leave",
    group: "client",
    weight: 2,
    about: "stream stalls after 1-3 events, client leaves",
    run: (ctx) => {
      const k = ctx.rng.int(1, 3);
      return leaveAfterEvents(ctx, `stall-stream:${k}`, k);
    },
  },
  {
    name: "leave_raw",
    group: "client",
    weight: 3,
    about: "fresh connection, 500-3000 byte body, leaves before any answer",
    run: async (ctx) => {
      const pad = "p".repeat(ctx.rng.int(500, 3000));
      const body = enc.encode(
        envelopeText(ctx, payloadOf(ctx, "stall", { pad })),
      );
      const r = await rawRequest({
        port: ctx.port,
        path: ctx.route,
        body,
        leaveAfterMs: ctx.rng.int(30, 1000),
      });
      // A busy worker may read the request only after the client left.
      return r.error
        ? { record: "any", seen: "connect failed", problems: [r.error] }
        : { record: ["Cancelled", "absent"], seen: "left", problems: [] };
    },
  },
  {
    name: "leave_keepalive",
    group: "client",
    weight: 2,
    about:
      "second request of a keep-alive connection, leaves before any answer",
    run: async (ctx) => {
      const warm = {
        auth_data: ctx.auth({ request_idx: ctx.idx + WARM_IDX }),
        payload: { chaos: "ok", max_tokens: 1 },
      };
      const body = enc.encode(envelopeText(ctx, payloadOf(ctx, "stall")));
      const r = await rawRequest({
        port: ctx.port,
        path: ctx.route,
        body,
        warmBody: enc.encode(JSON.stringify(warm)),
        leaveAfterMs: ctx.rng.int(30, 1000),
      });
      return r.error
        ? { record: "any", seen: "connect failed", problems: [r.error] }
        : {
          record: ["Cancelled", "absent"],
          seen: "left",
          problems: [],
          helper: true,
        };
    },
  },
  {
    name: "leave_queued",
    group: "client",
    weight: 2,
    about: "FIFO route behind slow requests, client leaves after 10-600 ms",
    route: "/v1/fifo",
    run: async (ctx) => {
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), ctx.rng.int(10, 600));
      try {
        const res = await send(
          ctx,
          envelopeText(ctx, payloadOf(ctx, "slow:150")),
          { signal: abort.signal },
        );
        const { broke } = await readBody(res);
        if (broke) {
          return {
            record: ["Cancelled", "Success"],
            seen: "left",
            problems: [],
          };
        }
        return await relayedOk(res);
      } catch (e) {
        // It may have been answered just as we left, or never admitted.
        if (isAbort(e)) {
          return {
            record: ["Cancelled", "Success", "absent"],
            seen: "left",
            problems: [],
          };
        }
        return fetchFailed(e);
      } finally {
        clearTimeout(timer);
      }
    },
  },
  {
    name: "partial_body",
    group: "client",
    weight: 2,
    about: "client sends half its body, then leaves",
    run: async (ctx) => {
      const body = enc.encode(envelopeText(ctx, payloadOf(ctx, "ok")));
      await rawRequest({
        port: ctx.port,
        path: ctx.route,
        body,
        sendBytes: Math.floor(body.length / 2),
        leaveAfterMs: ctx.rng.int(10, 300),
      });
      return { record: "none", seen: "left mid-body", problems: [] };
    },
  },
  {
    name: "cl_lie",
    group: "client",
    weight: 1,
    about:
      "Content-Length announces 1 GB-1 TB, a few bytes come, client leaves",
    run: async (ctx) => {
      const body = enc.encode(envelopeText(ctx, payloadOf(ctx, "ok")));
      const r = await rawRequest({
        port: ctx.port,
        path: ctx.route,
        body,
        contentLength: ctx.rng.pick([1e9, 4e9, 1e12]),
        ...(ctx.maxBodyBytes === undefined
          ? { leaveAfterMs: ctx.rng.int(50, 300) }
          : { timeoutMs: 3000 }),
      });
      if (r.status === undefined) {
        return { record: "none", seen: "left", problems: [] };
      }
      return {
        record: "none",
        seen: String(r.status),
        problems: checkWorkerAnswer(
          r.status,
          r.headers?.get("content-type") ?? null,
          r.body ?? "",
          [413],
        ),
      };
    },
  },
  {
    name: "idle_conns",
    group: "client",
    weight: 1,
    about: "10-60 connections hold half a request head for 0.2-2 s",
    run: async (ctx) => {
      const n = await holdIdleConnections(
        ctx.port,
        ctx.rng.int(10, 60),
        ctx.rng.int(200, 2000),
      );
      return { record: "none", seen: `${n} idle`, problems: [] };
    },
  },
  {
    name: "malformed",
    group: "input",
    weight: 3,
    about: "bodies that are not JSON, or JSON that is not an object",
    run: async (ctx) => {
      const bodies = [
        "",
        "{",
        "not json",
        '{"auth_data":',
        "[]",
        "null",
        "42",
        '"text"',
        "[".repeat(5000) + "]".repeat(5000),
        '{"a":'.repeat(600) + "1" + "}".repeat(600),
        "\u0000\u0001\u0002",
        '{"auth_data": {}, "payload": {}}\u0000',
      ];
      return await sendText(
        ctx,
        ctx.rng.pick(bodies),
        (res) => expectWorkerError(res, [422]),
        failedUnrecorded,
      );
    },
  },
  {
    name: "bad_envelope",
    group: "input",
    weight: 3,
    about: "envelopes with one field of the wrong type or missing",
    run: async (ctx) => {
      const payload = payloadOf(ctx, "ok");
      const auth = ctx.auth();
      const variants: [string, unknown][] = [
        ["auth_data", { payload }],
        ["auth_data", { auth_data: "x", payload }],
        ["request_idx", { auth_data: { ...auth, request_idx: "7" }, payload }],
        ["reqnum", { auth_data: { ...auth, reqnum: true }, payload }],
        ["url", { auth_data: { ...auth, url: "h".repeat(5000) }, payload }],
        [
          "signature",
          { auth_data: { ...auth, signature: "A".repeat(3000) }, payload },
        ],
        ["signature", { auth_data: { ...auth, signature: 42 }, payload }],
        ["url", { auth_data: { ...auth, url: null }, payload }],
        ["endpoint", { auth_data: { ...auth, endpoint: undefined }, payload }],
        ["payload", { auth_data: auth, payload: [1, 2] }],
        ["payload", { auth_data: auth, payload: "text" }],
        ["payload", { auth_data: auth }],
        ["session_id", { auth_data: auth, payload, session_id: 5 }],
      ];
      const [field, body] = ctx.rng.pick(variants);
      return await sendText(ctx, JSON.stringify(body), async (res) => {
        const v = await expectWorkerError(res, [422]);
        v.seen = `${v.seen} (${field})`;
        return v;
      }, failedUnrecorded);
    },
  },
  {
    name: "oversized",
    group: "input",
    weight: 1,
    about: "valid envelope over EDGEWORKER_MAX_BODY_BYTES",
    run: async (ctx) => {
      const limit = ctx.maxBodyBytes ?? 1024 * 1024;
      const pad = "o".repeat(limit + ctx.rng.int(1, limit));
      const text = envelopeText(ctx, payloadOf(ctx, "ok", { pad }));
      try {
        const res = await send(ctx, text);
        if (ctx.maxBodyBytes === undefined) return await relayedOk(res);
        return await expectWorkerError(res, [413]);
      } catch (e) {
        // The worker may answer 413 and close before the body is sent.
        return ctx.maxBodyBytes === undefined
          ? fetchFailed(e)
          : { record: "none", seen: "reset", problems: [] };
      }
    },
  },
  {
    name: "long_url",
    group: "input",
    weight: 1,
    about: "valid envelope on a URL of 8-64 KB",
    run: async (ctx) => {
      const path = `${ctx.route}?q=${"u".repeat(ctx.rng.int(8_000, 64_000))}`;
      try {
        const res = await send(
          ctx,
          envelopeText(ctx, payloadOf(ctx, "ok")),
          {},
          path,
        );
        if (res.ok) return await relayedOk(res);
        return await expectWorkerError(res, [414, 431]);
      } catch (e) {
        return failedUnrecorded(e);
      }
    },
  },
  {
    name: "huge_numbers",
    group: "input",
    weight: 1,
    about: "max_tokens 1e308, 1e400, -1, 2^60 (workload sums)",
    run: async (ctx) => {
      const raw = ctx.rng.pick([
        "1e308",
        "1.7976931348623157e308",
        "1e400",
        "-1",
        "1152921504606846976",
      ]);
      ctx.saneWorkload = false;
      return await sendOkWithNumber(ctx, "max_tokens", raw);
    },
  },
  {
    name: "big_reqnum",
    group: "auth",
    weight: 1,
    about: "auth_data.reqnum above 2^53 (Python accepts it)",
    run: async (ctx) => {
      const raw = ctx.rng.pick(["9007199254740993", "18446744073709551617"]);
      return await sendOkWithNumber(ctx, "reqnum", raw);
    },
  },
  {
    name: "bad_signature",
    group: "auth",
    weight: 3,
    about: "signature flipped, cut, not base64, empty, or of another message",
    run: async (ctx) => {
      const good = String(ctx.auth().signature);
      const i = ctx.rng.int(0, good.length - 3);
      const flip = good[i] === "A" ? "B" : "A";
      const variants = [
        good.slice(0, i) + flip + good.slice(i + 1),
        good.slice(4),
        "!!" + good.slice(2),
        "",
        await ctx.signUrl("http://127.0.0.1:1"),
      ];
      const signature = ctx.rng.pick(variants);
      return await sendText(
        ctx,
        envelopeText(ctx, payloadOf(ctx, "ok"), { signature }),
        (res) => expectRejected(res, [401]),
      );
    },
  },
  {
    name: "wrong_url",
    group: "auth",
    weight: 1,
    about: "valid signature issued for another worker's url",
    run: async (ctx) => {
      const url = `http://203.0.113.${ctx.rng.int(1, 254)}:${
        ctx.rng.int(1024, 65535)
      }`;
      const signature = await ctx.signUrl(url);
      return await sendText(
        ctx,
        envelopeText(ctx, payloadOf(ctx, "ok"), { url, signature }),
        (res) => expectRejected(res, [401]),
      );
    },
  },
  {
    name: "over_budget",
    group: "normal",
    weight: 1,
    about: "workload 200000 on a route with maxQueueTime 1 s: 200 or 429",
    route: "/v1/budget",
    run: async (ctx) => {
      const payload = { ...payloadOf(ctx, "slow:300"), max_tokens: 200_000 };
      ctx.workload = 200_000;
      return await sendText(
        ctx,
        envelopeText(ctx, payload),
        (res) => relayed(res) ? relayedOk(res) : expectRejected(res, [429]),
      );
    },
  },
];

/**
 * Picks ingredients by `only` and `without` (names or group names,
 * comma-separated); throws on an unknown name.
 */
export function selectIngredients(
  only: readonly string[] = [],
  without: readonly string[] = [],
): Ingredient[] {
  const known = new Set<string>([
    ...INGREDIENTS.map((i) => i.name),
    ...INGREDIENTS.map((i) => i.group),
  ]);
  for (const n of [...only, ...without]) {
    if (!known.has(n)) {
      throw new RangeError(
        `unknown ingredient "${n}" (known: ${[...known].join(", ")})`,
      );
    }
  }
  const hit = (i: Ingredient, names: readonly string[]) =>
    names.includes(i.name) || names.includes(i.group);
  return INGREDIENTS.filter((i) =>
    (only.length === 0 || hit(i, only)) && !hit(i, without)
  );
}
