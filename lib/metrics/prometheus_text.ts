/**
 * A tiny writer of the Prometheus text exposition format (0.0.4): HELP and
 * TYPE lines, label escaping, and labelled counters and histograms whose
 * updates are O(1) and O(buckets) and allocate nothing once a label set
 * exists.
 *
 * @module
 */

/** `Content-Type` of the text exposition format. */
export const PROMETHEUS_CONTENT_TYPE =
  "text/plain; version=0.0.4; charset=utf-8";

/** Metric family types this writer emits. */
export type MetricType = "counter" | "gauge" | "histogram";

/** Label names to values. */
export type Labels = Readonly<Record<string, string>>;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Escapes a label value: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`);
}

/** Escapes HELP text: backslash and line feed. */
export function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => c === "\n" ? "\\n" : "\\\\");
}

/** Formats a sample value (`NaN`, `+Inf`, `-Inf` spelled as Prometheus does). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** Renders labels as `a="x",b="y"` (escaped, no braces). */
export function labelText(labels: Labels): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}="${escapeLabelValue(v)}"`)
    .join(",");
}

function checkNames(name: string, labelNames: readonly string[]): void {
  if (!METRIC_NAME.test(name)) throw new Error(`bad metric name: ${name}`);
  for (const l of labelNames) {
    if (!LABEL_NAME.test(l) || l.startsWith("__")) {
      throw new Error(`bad label name: ${l}`);
    }
  }
}

/** Options of {@linkcode TextWriter}. */
export interface TextWriterOptions {
  /**
   * Writes integral values and bucket bounds as `1.0`, as Python's
   * `prometheus_client` (vLLM, SGLang) does.
   *
   * @default {false}
   */
  pythonFloats?: boolean;
}

/** Accumulates exposition text; one instance per scrape. */
export class TextWriter {
  #parts: string[] = [];
  #pythonFloats: boolean;

  /** An empty page; see {@linkcode TextWriterOptions}. */
  constructor(options: TextWriterOptions = {}) {
    this.#pythonFloats = options.pythonFloats ?? false;
  }

  /** A value (or bucket bound) as this writer spells it. */
  value(v: number): string {
    return this.#pythonFloats && Number.isInteger(v) && Math.abs(v) < 1e16
      ? v.toFixed(1)
      : formatValue(v);
  }

  /** Starts a metric family with its HELP and TYPE lines. */
  family(name: string, type: MetricType, help: string): this {
    checkNames(name, []);
    this.#parts.push(`# HELP ${name} ${escapeHelp(help)}\n`);
    this.#parts.push(`# TYPE ${name} ${type}\n`);
    return this;
  }

  /** Writes one sample line. */
  sample(name: string, labels: Labels | undefined, value: number): this {
    return this.sampleText(name, labels ? labelText(labels) : "", value);
  }

  /** Writes one sample line from pre-rendered {@linkcode labelText}. */
  sampleText(name: string, labels: string, value: number): this {
    const braces = labels === "" ? "" : `{${labels}}`;
    this.#parts.push(`${name}${braces} ${this.value(value)}\n`);
    return this;
  }

  /** Writes a family holding a single unlabelled sample. */
  single(name: string, type: MetricType, help: string, value: number): this {
    return this.family(name, type, help).sample(name, undefined, value);
  }

  /** The exposition text (ends with a line feed). */
  text(): string {
    return this.#parts.join("");
  }
}

/** Label sets of a labelled metric, kept in creation order. */
export abstract class LabelledVec<T> {
  /** Metric family name. */
  readonly name: string;
  /** HELP text. */
  readonly help: string;
  /** Label names, in the order `labels()` takes values. */
  readonly labelNames: readonly string[];
  #root = new Map<string, unknown>();
  #single: T | undefined;
  #entries: { labels: string; child: T }[] = [];

  /** Checks the names; no label set exists until `labels()` is called. */
  constructor(name: string, help: string, labelNames: readonly string[]) {
    checkNames(name, labelNames);
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  /**
   * The child for these label values (created on first use). Keep the
   * returned child to update it without any lookup.
   */
  labels(...values: string[]): T {
    if (values.length !== this.labelNames.length) {
      throw new Error(
        `${this.name}: expected ${this.labelNames.length} labels`,
      );
    }
    if (values.length === 0) return this.#single ??= this.#add({});
    let map = this.#root;
    for (let i = 0; i < values.length - 1; i++) {
      let next = map.get(values[i]) as Map<string, unknown> | undefined;
      if (!next) map.set(values[i], next = new Map());
      map = next;
    }
    const last = values[values.length - 1];
    let child = map.get(last) as T | undefined;
    if (!child) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((n, i) => labels[n] = values[i]);
      child = this.#add(labels);
      map.set(last, child);
    }
    return child;
  }

  /** Every label set (pre-rendered) with its child, in creation order. */
  protected get entries(): readonly { labels: string; child: T }[] {
    return this.#entries;
  }

  /** Makes the value of a new label set. */
  protected abstract create(): T;

  #add(labels: Labels): T {
    const child = this.create();
    this.#entries.push({ labels: labelText(labels), child });
    return child;
  }
}

/** One labelled counter value. */
export class CounterChild {
  #value = 0;
  /** Adds `by` (≥ 0). */
  inc(by = 1): void {
    if (by > 0) this.#value += by;
  }
  /** Current value. */
  get value(): number {
    return this.#value;
  }
}

/** A counter family with labels. */
export class CounterVec extends LabelledVec<CounterChild> {
  /** A fresh zero counter. */
  protected create(): CounterChild {
    return new CounterChild();
  }

  /** Writes the family and its samples. */
  render(w: TextWriter): void {
    w.family(this.name, "counter", this.help);
    for (const { labels, child } of this.entries) {
      w.sampleText(this.name, labels, child.value);
    }
  }
}

/** One labelled histogram. */
export class HistogramChild {
  readonly #bounds: readonly number[];
  readonly #counts: Float64Array;
  #sum = 0;
  #count = 0;

  /** `bounds` are the sorted finite upper bounds (`+Inf` is implicit). */
  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.#counts = new Float64Array(bounds.length);
  }

  /** Records one observation: O(buckets), no allocation. */
  observe(value: number): void {
    if (Number.isNaN(value)) return;
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]) {
        this.#counts[i]++;
        break;
      }
    }
    this.#sum += value;
    this.#count++;
  }

  /** Sum of the observations. */
  get sum(): number {
    return this.#sum;
  }

  /** Number of observations. */
  get count(): number {
    return this.#count;
  }

  /** Cumulative count per finite bound, in bound order. */
  cumulative(): number[] {
    let acc = 0;
    return Array.from(this.#counts, (c) => acc += c);
  }
}

/** A histogram family with labels. */
export class HistogramVec extends LabelledVec<HistogramChild> {
  readonly #bounds: readonly number[];

  /** `buckets` are finite upper bounds; they are sorted and deduplicated. */
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    buckets: readonly number[],
  ) {
    super(name, help, labelNames);
    if (labelNames.includes("le")) throw new Error("`le` is reserved");
    this.#bounds = [...new Set(buckets.filter(Number.isFinite))].sort((a, b) =>
      a - b
    );
  }

  /** A fresh empty histogram. */
  protected create(): HistogramChild {
    return new HistogramChild(this.#bounds);
  }

  /** Writes the family: `_bucket{le}` (cumulative), `_sum`, `_count`. */
  render(w: TextWriter): void {
    w.family(this.name, "histogram", this.help);
    const bucket = `${this.name}_bucket`;
    for (const { labels, child } of this.entries) {
      const prefix = labels === "" ? "" : `${labels},`;
      const cumulative = child.cumulative();
      for (let i = 0; i < this.#bounds.length; i++) {
        const le = w.value(this.#bounds[i]);
        w.sampleText(bucket, `${prefix}le="${le}"`, cumulative[i]);
      }
      w.sampleText(bucket, `${prefix}le="+Inf"`, child.count);
      w.sampleText(`${this.name}_sum`, labels, child.sum);
      w.sampleText(`${this.name}_count`, labels, child.count);
    }
  }
}
