/**
 * The worker's own overhead figures, read from its `/metrics` around each
 * bench run, set beside the bench's own latency figures: the two should
 * agree (the worker sees its JS side only; see lib/traffic/ticket.ts).
 *
 * @module
 */

/** Sums and counts of the two overhead histograms for one route. */
export interface OwnFigures {
  beforeSendS: number;
  firstByteS: number;
  /** Requests observed (the before-send count). */
  count: number;
}

const BEFORE = "edgeworker_overhead_before_send_seconds";
const FIRST = "edgeworker_overhead_first_byte_seconds";

/** Reads the figures of `route` from a worker's `/metrics`. */
export async function ownFigures(
  url: string,
  route: string,
): Promise<OwnFigures> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const labels = `{route="${route}"}`;
  const read = (name: string): number => {
    const line = text.split("\n").find((l) => l.startsWith(name + labels));
    return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
  };
  return {
    beforeSendS: read(`${BEFORE}_sum`),
    firstByteS: read(`${FIRST}_sum`),
    count: read(`${BEFORE}_count`),
  };
}

/** What a run added: `after` minus `before`. */
export function delta(before: OwnFigures, after: OwnFigures): OwnFigures {
  return {
    beforeSendS: after.beforeSendS - before.beforeSendS,
    firstByteS: after.firstByteS - before.firstByteS,
    count: after.count - before.count,
  };
}

/** Adds `b` into `a`. */
export function add(a: OwnFigures, b: OwnFigures): void {
  a.beforeSendS += b.beforeSendS;
  a.firstByteS += b.firstByteS;
  a.count += b.count;
}

/** An empty sum. */
export function none(): OwnFigures {
  return { beforeSendS: 0, firstByteS: 0, count: 0 };
}

/** Mean µs per request: before send, first byte, both. */
export function meansUs(f: OwnFigures): [number, number, number] {
  const b = f.beforeSendS / f.count * 1e6;
  const s = f.firstByteS / f.count * 1e6;
  return [b, s, b + s];
}
