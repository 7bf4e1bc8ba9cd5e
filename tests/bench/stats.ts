/**
 * Small statistics helpers of the bench: percentiles of a sample and the
 * median of per-round figures.
 *
 * @module
 */

/** The `p` quantile (0..1) of `values` (nearest rank); NaN when empty. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil(p * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

/** Median of per-round figures (NaN ignored). */
export function median(values: number[]): number {
  return percentile(values.filter((v) => !Number.isNaN(v)), 0.5);
}
