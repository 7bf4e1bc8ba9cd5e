/**
 * The routes of the 2026 Python OpenAI worker beyond completions and chat
 * (`workers/openai/core.py` `build_config`, `benchmark.py` `BENCHMARKS` in
 * vast-ai/pyworker): each route's workload rule and benchmark, as Python
 * has them. `OPENAI_ROUTES` picks the routes served, `BENCHMARK_ROUTE` the
 * one benchmarked (see `_openai.ts`).
 *
 * Python counts every route in "benchmark requests": the queue estimate
 * divides all in-flight work by the benchmark route's throughput alone,
 * so a request weighs 500 (the completions benchmark's `max_tokens`) times
 * its size over a reference request's, clamped to 0.1-8 (50 to 4000).
 * Completions and chat count `max_tokens`, which is the same unit.
 *
 * Longer than most modules: one workload rule and one benchmark payload per route, kept side by side as Python keeps them.
 *
 * @module
 */
import type { Payload } from "../lib/config/schemas.ts";
import { unwrapInput } from "../lib/traffic/handlers.ts";
import { randomWords } from "./_words.ts";

/** One benchmark request's weight: the completions benchmark's `max_tokens`. */
export const BENCHMARK_MAX_TOKENS = 500;
const MIN_REQUEST_MULTIPLE = 0.1;
const MAX_REQUEST_MULTIPLE = 8;

/** Side of one reference image. */
export const REF_IMAGE_SIDE = 1024;
const REF_IMAGE_PIXELS = REF_IMAGE_SIDE ** 2;
const REF_SPEECH_CHARS = 500;
const CHARS_PER_TOKEN = 4;
/** A batch benchmark splits one reference request this many ways. */
const BATCH_BENCHMARK_ITEMS = 4;
const REF_AUDIO_GEN_SECONDS = 10;
// One query against 16 documents; each pair fits a 512-token reranker.
const RERANK_DOCS = 16;
const RERANK_QUERY_CHARS = 60;
const RERANK_DOC_CHARS = 250;
const REF_RERANK_CHARS = RERANK_DOCS * (RERANK_QUERY_CHARS + RERANK_DOC_CHARS);

/** Characters of the embeddings benchmark unless `BENCHMARK_EMBED_CHARS` (a 256-token encoder). */
export const DEFAULT_EMBED_CHARS = 600;

/** Routes Python serves from JSON turned into multipart uploads; not served here. */
export const UPLOAD_ROUTES: readonly string[] = [
  "/v1/images/edits",
  "/v1/audio/transcriptions",
  "/v1/audio/translations",
  "/v1/videos/sync",
];

/** What the benchmark of a route sends, as Python's `BENCHMARKS` table. */
export interface RouteBenchmark {
  concurrency: number;
  runs: number;
  generator: () => Payload;
}

/** A route of the OpenAI family: its workload and its benchmark. */
export interface OpenAiRoute {
  route: string;
  workload: (payload: Payload) => number;
  benchmark: RouteBenchmark;
  /** Checks and unwraps the payload; unset: `unwrapInput`. */
  requestParser?: (payload: Payload) => Payload;
}

/** What the route table needs from the environment. */
export interface RouteSettings {
  /** `MODEL_NAME` or the engine's own variable; left out when unset. */
  model?: string;
  /** `BENCHMARK_EMBED_CHARS`. */
  embedChars: number;
  /** `BENCHMARK_SPEECH_VOICE`; no voice is sent when unset. */
  speechVoice?: string;
}

/** `size` as a multiple of `reference`, in benchmark requests, clamped. */
export function inRequestUnits(size: number, reference: number): number {
  const multiple = Math.min(
    Math.max(size / reference, MIN_REQUEST_MULTIPLE),
    MAX_REQUEST_MULTIPLE,
  );
  return BENCHMARK_MAX_TOKENS * multiple;
}

/** Python's `float(value)` with a default: numbers, numeric strings, booleans. */
function num(value: unknown, fallback: number): number {
  let n = NaN;
  if (typeof value === "number") n = value;
  else if (typeof value === "boolean") n = Number(value);
  else if (typeof value === "string" && value.trim() !== "") n = Number(value);
  return Number.isFinite(n) ? n : fallback;
}

/** Python's `len(str)`: code points, not UTF-16 units. */
function textLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xdc00 || c > 0xdfff) n++;
  }
  return n;
}

function flatten(values: unknown[]): unknown[] {
  return values.flatMap((v) => Array.isArray(v) ? v : [v]);
}

/** `n` × pixels of `size` ("WxH"; anything else: 1024×1024). */
export function imageWorkload(p: Payload): number {
  let pixels = REF_IMAGE_PIXELS;
  const size = String(p.size || "").toLowerCase();
  // Python's partition("x"): width before the first "x", height after it.
  const x = size.indexOf("x");
  if (x >= 0) {
    pixels = num(size.slice(0, x), REF_IMAGE_SIDE) *
      num(size.slice(x + 1), REF_IMAGE_SIDE);
  }
  return inRequestUnits(num(p.n, 1) * pixels, REF_IMAGE_PIXELS);
}

/** `ref_audio`, `ref_audio_2` and `references[].audio_path` of a speech request. */
function speechReferences(p: Payload): unknown[] {
  const refs = p.references;
  const list = Array.isArray(refs) ? refs : refs != null ? [refs] : [];
  const paths = list.map((r) =>
    typeof r === "object" && r !== null && !Array.isArray(r)
      ? (r as Payload).audio_path
      : r
  );
  return [...flatten([p.ref_audio]), p.ref_audio_2, ...paths];
}

/** The schemes a reference the engine fetches may have: never a path on the instance. */
const REFERENCE_SCHEMES = ["http:", "https:", "data:"];

function checkReferences(values: unknown[], field: string): void {
  for (const v of values) {
    if (v === undefined || v === null) continue;
    if (typeof v !== "string") throw new Error(`${field}: must be a string`);
    const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(v)?.[0].toLowerCase();
    if (!scheme || !REFERENCE_SCHEMES.includes(scheme)) {
      throw new Error(`${field}: must be an http(s) URL or a data: URI`);
    }
  }
}

/**
 * Speech payloads, as Python's `speech_request_parser`: `input` unwrapped
 * only when it is an object (it is the text otherwise), empty references
 * dropped, and every voice-clone reference an http(s) URL or a `data:`
 * URI (the engine fetches it; a file path would read the instance's disk).
 *
 * @throws {Error} naming the field; the client gets 422
 */
export function speechRequest(payload: Payload): Payload {
  const p = { ...unwrapInput(payload) };
  for (const k of ["ref_audio", "ref_audio_2"]) if (p[k] === "") delete p[k];
  checkReferences(speechReferences(p), "ref_audio");
  return p;
}

/** Speech batches, as Python's `speech_batch_request_parser`. */
export function speechBatchRequest(payload: Payload): Payload {
  const p = { ...unwrapInput(payload) };
  const items = p.items;
  if (
    !Array.isArray(items) ||
    !items.every((i) =>
      typeof i === "object" && i !== null && !Array.isArray(i)
    )
  ) {
    throw new Error("items: must be a list of objects");
  }
  const all = [p, ...(items as Payload[])];
  for (const item of all) if (item.ref_audio === "") delete item.ref_audio;
  checkReferences(all.map((i) => i.ref_audio), "ref_audio");
  return p;
}

/** Text, plus one reference request per voice-clone reference. */
export function speechWorkload(p: Payload): number {
  let chars = typeof p.input === "string" ? textLength(p.input) : 0;
  chars += REF_SPEECH_CHARS *
    speechReferences(p).filter((r) => typeof r === "string").length;
  return inRequestUnits(chars, REF_SPEECH_CHARS);
}

/** Each item as on speech; the batch's `ref_audio` counts for items without one. */
export function speechBatchWorkload(p: Payload): number {
  let chars = 0;
  for (const item of Array.isArray(p.items) ? p.items : []) {
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      continue;
    }
    const it = item as Payload;
    if (typeof it.input === "string") chars += textLength(it.input);
    if (it.ref_audio || p.ref_audio) chars += REF_SPEECH_CHARS;
  }
  return inRequestUnits(chars, REF_SPEECH_CHARS);
}

/** Conversations × their `max_tokens` (or `max_completion_tokens`, else 500). */
export function chatBatchWorkload(p: Payload): number {
  const count = Array.isArray(p.messages) ? p.messages.length : 0;
  const per = p.max_tokens || p.max_completion_tokens || BENCHMARK_MAX_TOKENS;
  return inRequestUnits(
    num(per, BENCHMARK_MAX_TOKENS) * count,
    BENCHMARK_MAX_TOKENS,
  );
}

/** One request each: Stable Audio renders its full length whatever is asked. */
export function audioGenerateWorkload(_p: Payload): number {
  return BENCHMARK_MAX_TOKENS;
}

function scoreInputChars(v: unknown): number {
  // A multimodal input counts as one document.
  return typeof v === "string" ? textLength(v) : RERANK_DOC_CHARS;
}

/** Each (query, document) pair a reranker reads: one query against many, or two lists pairwise. */
function pairsWorkload(queries: unknown[], documents: unknown): number {
  const docs = Array.isArray(documents) ? documents : [documents];
  const pairs: [unknown, unknown][] = queries.length === 1
    ? docs.map((d) => [queries[0], d])
    : queries.slice(0, docs.length).map((q, i) => [q, docs[i]]);
  const chars = pairs.reduce(
    (sum, [q, d]) => sum + scoreInputChars(q) + scoreInputChars(d),
    0,
  );
  return inRequestUnits(chars, REF_RERANK_CHARS);
}

/** `query` against `documents`. */
export function rerankWorkload(p: Payload): number {
  return pairsWorkload([p.query], p.documents);
}

/** vLLM's shapes: `queries` with `documents` or `items`, `text_1`/`text_2`, `data_1`/`data_2`. */
export function scoreWorkload(p: Payload): number {
  const first = (...keys: string[]) =>
    keys.map((k) => p[k]).find((v) => v !== undefined && v !== null);
  const queries = first("queries", "text_1", "data_1");
  return pairsWorkload(
    Array.isArray(queries) ? queries : [queries],
    first("documents", "items", "text_2", "data_2"),
  );
}

/** `input`: a string, or strings, token ids or token lists, summed; against `embedChars`. */
export function embeddingsWorkloadFor(
  embedChars: number,
): (p: Payload) => number {
  return (p) => {
    const items = Array.isArray(p.input) ? p.input : [p.input];
    let chars = 0;
    for (const item of items) {
      if (typeof item === "string") chars += textLength(item);
      else if (Array.isArray(item)) chars += item.length * CHARS_PER_TOKEN;
      else if (Number.isInteger(item)) chars += CHARS_PER_TOKEN;
    }
    return inRequestUnits(chars, embedChars);
  };
}

/** Random words, about `chars` characters long. */
function words(chars: number): string {
  const out: string[] = [];
  let size = 0;
  while (size < chars) {
    const w = randomWords(1);
    out.push(w);
    size += w.length + 1;
  }
  return out.join(" ");
}

/**
 * Every route with a JSON body that Python's worker serves beyond
 * completions and chat, in its table's order, with its benchmark.
 */
export function extraRoutes(s: RouteSettings): OpenAiRoute[] {
  const model = s.model ? { model: s.model } : {};
  const voice = s.speechVoice ? { voice: s.speechVoice } : {};
  const k = BATCH_BENCHMARK_ITEMS;
  return [
    {
      route: "/v1/chat/completions/batch",
      workload: chatBatchWorkload,
      benchmark: {
        concurrency: 10,
        runs: 3,
        generator: () => ({
          ...model,
          messages: Array.from({ length: k }, () => [
            { role: "user", content: randomWords(Math.floor(250 / k)) },
          ]),
          temperature: 0.7,
          max_tokens: Math.floor(500 / k),
        }),
      },
    },
    {
      route: "/v1/audio/speech",
      workload: speechWorkload,
      requestParser: speechRequest,
      benchmark: {
        concurrency: 4,
        runs: 2,
        generator: () => ({ ...model, input: words(500), ...voice }),
      },
    },
    {
      route: "/v1/audio/speech/batch",
      workload: speechBatchWorkload,
      requestParser: speechBatchRequest,
      benchmark: {
        concurrency: 4,
        runs: 2,
        generator: () => ({
          ...model,
          items: Array.from({ length: k }, () => ({
            input: words(Math.floor(500 / k)),
          })),
          ...voice,
        }),
      },
    },
    {
      route: "/v1/audio/generate",
      workload: audioGenerateWorkload,
      benchmark: {
        concurrency: 2,
        runs: 1,
        generator: () => ({
          ...model,
          input: words(60),
          audio_length: REF_AUDIO_GEN_SECONDS,
        }),
      },
    },
    {
      route: "/v1/embeddings",
      workload: embeddingsWorkloadFor(s.embedChars),
      benchmark: {
        concurrency: 10,
        runs: 3,
        generator: () => ({ ...model, input: words(s.embedChars) }),
      },
    },
    {
      route: "/v1/rerank",
      workload: rerankWorkload,
      benchmark: {
        concurrency: 10,
        runs: 3,
        generator: () => ({
          ...model,
          query: words(RERANK_QUERY_CHARS),
          documents: Array.from(
            { length: RERANK_DOCS },
            () => words(RERANK_DOC_CHARS),
          ),
        }),
      },
    },
    {
      route: "/v1/score",
      workload: scoreWorkload,
      benchmark: {
        concurrency: 10,
        runs: 3,
        generator: () => ({
          ...model,
          queries: words(RERANK_QUERY_CHARS),
          items: Array.from(
            { length: RERANK_DOCS },
            () => words(RERANK_DOC_CHARS),
          ),
        }),
      },
    },
    {
      route: "/v1/images/generations",
      workload: imageWorkload,
      benchmark: {
        concurrency: 2,
        runs: 1,
        generator: () => ({
          ...model,
          prompt: words(60),
          size: `${REF_IMAGE_SIDE}x${REF_IMAGE_SIDE}`,
          n: 1,
        }),
      },
    },
  ];
}
