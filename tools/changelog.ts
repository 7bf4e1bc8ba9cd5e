/**
 * Reads one version's section of CHANGELOG.md (Keep a Changelog headings,
 * `## [0.1.0] - 2026-12-01` or `## 0.1.0`): release:check requires it and
 * release.yml uses it as the release notes.
 *
 * @module
 */

/** The text under `version`'s `## ` heading, trimmed; `undefined` when the
 * heading is missing or its section is empty. */
export function changelogSection(
  text: string,
  version: string,
): string | undefined {
  const lines = text.split(/\r?\n/);
  const escaped = version.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const heading = new RegExp(`^## \\[?v?${escaped}\\]?(\\s|$)`);
  const start = lines.findIndex((l) => heading.test(l));
  if (start < 0) return undefined;
  let end = lines.findIndex((l, i) => i > start && /^## /.test(l));
  if (end < 0) end = lines.length;
  // Link references at the end of the file are not part of the notes.
  const body = lines.slice(start + 1, end)
    .filter((l) => !/^\[[^\]]+\]: /.test(l))
    .join("\n").trim();
  return body === "" ? undefined : body;
}
