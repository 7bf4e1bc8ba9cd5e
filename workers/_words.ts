/**
 * Benchmark prompts made without downloads (the Python workers used nltk's
 * word list): random words from a fixed vocabulary.
 *
 * @module
 */

const WORDS = (
  "time person year way day thing man world life hand part child eye woman " +
  "place work week case point government company number group problem fact " +
  "river mountain ocean forest city village garden bridge road station music " +
  "story history science nature energy light water fire earth metal stone " +
  "glass paper book letter window door table chair house school market " +
  "computer network signal model engine question answer reason method " +
  "system language memory picture color sound voice dream journey morning " +
  "evening winter summer spring autumn animal bird horse dog cat fish tree"
).split(" ");

/** `count` random words joined by spaces. */
export function randomWords(count: number): string {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    out.push(WORDS[Math.floor(Math.random() * WORDS.length)]);
  }
  return out.join(" ");
}
