/**
 * The layout README promises: `lib/` modules import only their own layer
 * or the layers below it, the client imports no other layer (but `std/`,
 * the stand-in for Deno's std that imports nothing), and no module
 * imports itself through a cycle. Read from the source text, so a new
 * import that breaks the map fails here.
 */
import assert from "node:assert/strict";

/** Top to bottom: a layer may import the ones after it. */
const LAYERS = [
  "worker",
  "http",
  "autoscaler|metrics",
  "model",
  "traffic",
  "auth",
  "config",
  "std",
] as const;

const LIB = new URL("../lib/", import.meta.url);
const IMPORT =
  /^\s*(?:import|export)\b[^"']*?\bfrom\s+["'](\.[^"']+)["']|^\s*import\s+["'](\.[^"']+)["']/gm;

async function modules(dir: URL, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) {
      out.push(
        ...await modules(new URL(`${e.name}/`, dir), `${prefix}${e.name}/`),
      );
    } else if (e.name.endsWith(".ts")) out.push(prefix + e.name);
  }
  return out;
}

/** Module → the lib modules it imports (paths relative to lib/). */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const mod of await modules(LIB)) {
    // Doc comments hold example imports; only code counts.
    const code = (await Deno.readTextFile(new URL(mod, LIB)))
      .replace(/\/\*[\s\S]*?\*\//g, "");
    const targets: string[] = [];
    for (const m of code.matchAll(IMPORT)) {
      const url = new URL(m[1] ?? m[2], new URL(mod, LIB));
      if (url.href.startsWith(LIB.href)) {
        targets.push(url.href.slice(LIB.href.length));
      }
    }
    graph.set(mod, targets);
  }
  return graph;
}

function rank(mod: string): number {
  const layer = mod.split("/")[0];
  return LAYERS.findIndex((l) => l.split("|").includes(layer));
}

Deno.test("every lib module sits in a layer folder and imports only its layer or lower ones", async () => {
  const graph = await importGraph();
  const wrong: string[] = [];
  for (const [mod, targets] of graph) {
    const layer = mod.split("/")[0];
    if (layer === "client") {
      for (const t of targets) {
        const ok = t.startsWith("client/") || t.startsWith("std/");
        if (!ok) wrong.push(`${mod} -> ${t}`);
      }
      continue;
    }
    assert.ok(rank(mod) >= 0, `${mod} is not in a layer folder`);
    for (const t of targets) {
      if (t.split("/")[0] === layer) continue;
      if (!(rank(t) > rank(mod))) wrong.push(`${mod} -> ${t}`);
    }
  }
  assert.deepEqual(wrong, [], "imports against the layer order");
});

Deno.test("no lib module imports itself through a cycle", async () => {
  const graph = await importGraph();
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  const visit = (mod: string, path: string[]) => {
    state.set(mod, "open");
    for (const t of graph.get(mod) ?? []) {
      if (state.get(t) === "open") {
        cycles.push([...path.slice(path.indexOf(t)), t].join(" -> "));
      } else if (!state.has(t)) visit(t, [...path, t]);
    }
    state.set(mod, "done");
  };
  for (const mod of graph.keys()) if (!state.has(mod)) visit(mod, [mod]);
  assert.deepEqual(cycles, []);
});
