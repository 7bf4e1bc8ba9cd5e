/**
 * Reading a `/metrics` page as a Prometheus scraper does: parsed with the
 * real parser (`parse-prometheus-text-format`; a page it cannot parse
 * fails the test), samples looked up by name and exact labels.
 *
 * @module
 */
import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";

/** One sample as the parser gives it (histograms: buckets, count, sum). */
export interface Sample {
  value?: string;
  labels?: Record<string, string>;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}

/** One metric family as the parser gives it. */
export interface Family {
  name: string;
  help: string;
  type: string;
  metrics: Sample[];
}

/** The families of a page, by name. */
export type Families = Map<string, Family>;

/** Parses `text` with the real parser. */
export function parseFamilies(text: string): Families {
  const families = parsePrometheusTextFormat(text) as Family[];
  return new Map(families.map((f) => [f.name, f]));
}

/** Fetches `<url>/metrics` (asserting 200, plain text) and parses it. */
export async function scrape(
  url: string,
): Promise<{ text: string; families: Families }> {
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
  return { text, families: parseFamilies(text) };
}

/**
 * The value of `name`'s sample with exactly `labels` (the family must
 * exist); `undefined` when no sample has them.
 */
export function sampleValue(
  families: Families,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const family = families.get(name);
  assert.ok(family, `missing family ${name}`);
  const want = Object.entries(labels);
  const hit = family.metrics.find((m) =>
    want.every(([k, v]) => m.labels?.[k] === v) &&
    Object.keys(m.labels ?? {}).length === want.length
  );
  return hit?.value === undefined ? undefined : Number(hit.value);
}

/** {@linkcode sampleValue}, asserted present. */
export function valueOf(
  families: Families,
  name: string,
  labels: Record<string, string> = {},
): number {
  const v = sampleValue(families, name, labels);
  assert.ok(v !== undefined, `${name} ${JSON.stringify(labels)}`);
  return v;
}

/**
 * The value on the line that starts with `line` (name and labels as
 * written): the parser folds labelled histograms into one unlabelled
 * sample, so their per-label `_sum` and `_count` are read from the text.
 */
export function rawValue(text: string, line: string): number {
  const hit = text.split("\n").find((l) => l.startsWith(line + " "));
  assert.ok(hit, `missing line ${line}`);
  return Number(hit.slice(line.length + 1));
}

/**
 * The samples of `name` that carry `where`, keyed by their `key` labels'
 * values joined with `/` (e.g. `model/startup`); `{}` without the family.
 */
export function samplesBy(
  families: Families,
  name: string,
  key: string[],
  where: Record<string, string> = {},
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of families.get(name)?.metrics ?? []) {
    if (!Object.entries(where).every(([k, v]) => m.labels?.[k] === v)) {
      continue;
    }
    out[key.map((k) => m.labels?.[k]).join("/")] = Number(m.value);
  }
  return out;
}
