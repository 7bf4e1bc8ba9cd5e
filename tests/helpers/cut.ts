/**
 * Cutting a text into pieces at arbitrary points, for the property tests
 * of the stream parsers: whatever the cuts, the parsed result must be the
 * same.
 *
 * @module
 */

/**
 * Splits `text` at `points` (each taken modulo `text.length + 1`, repeats
 * dropped); the pieces joined give `text` back.
 */
export function cutAt(text: string, points: number[]): string[] {
  const at = [...new Set(points.map((p) => p % (text.length + 1)))]
    .sort((a, b) => a - b);
  const pieces: string[] = [];
  let last = 0;
  for (const p of at) {
    pieces.push(text.slice(last, p));
    last = p;
  }
  pieces.push(text.slice(last));
  return pieces;
}
