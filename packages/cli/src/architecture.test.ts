/**
 * The layout rules of the repository, checked on the sources (packages/<name>/src) so they hold
 * as the code grows: no import circles in any package, the SDK's transport a leaf, cairnd
 * independent of the SDK, files small or saying why not, comments pointing inside the repo.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
const PACKAGES = readdirSync(join(ROOT, "packages")).filter((p) => statSync(join(ROOT, "packages", p, "src"), { throwIfNoEntry: false })?.isDirectory());
const MAX_LINES = 500;

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sources(path, out);
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

/** Relative imports of a file (static, type-only and dynamic), as absolute .ts paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)["'](\.{1,2}\/[^"']+)["']/g)].map((m) => m[1]!);
  return specs.map((s) => resolve(dirname(file), s).replace(/\.js$/, ".ts"));
}

function findCycle(files: string[]): string[] | undefined {
  const graph = new Map(files.map((f) => [f, importsOf(f).filter((t) => files.includes(t))]));
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (f: string): string[] | undefined => {
    if (state.get(f) === "done") return undefined;
    if (state.get(f) === "visiting") return [...stack.slice(stack.indexOf(f)), f];
    state.set(f, "visiting");
    stack.push(f);
    for (const t of graph.get(f) ?? []) {
      const c = visit(t);
      if (c) return c;
    }
    stack.pop();
    state.set(f, "done");
    return undefined;
  };
  for (const f of files) {
    const c = visit(f);
    if (c) return c;
  }
  return undefined;
}

describe("the repository's layout", () => {
  for (const pkg of PACKAGES) {
    it(`has no import circle in packages/${pkg}`, () => {
      const files = sources(join(ROOT, "packages", pkg, "src"));
      const cycle = findCycle(files);
      assert.equal(cycle, undefined, `import circle: ${cycle?.map((f) => relative(ROOT, f)).join(" → ")}`);
    });
  }

  it("finds a circle when there is one (the check itself works)", () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-cycle-"));
    try {
      writeFileSync(join(dir, "a.ts"), 'import { b } from "./b.js";\nexport const a = 1;\n');
      writeFileSync(join(dir, "b.ts"), 'import type { c } from "./c.js";\nexport const b = 2;\n');
      writeFileSync(join(dir, "c.ts"), 'export const c = async () => import("./a.js");\n');
      const files = sources(dir);
      assert.deepEqual(findCycle(files)?.map((f) => f.slice(dir.length + 1)), ["a.ts", "b.ts", "c.ts", "a.ts"]);
      writeFileSync(join(dir, "c.ts"), "export const c = 3;\n");
      assert.equal(findCycle(files), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps the SDK's transport a leaf: it imports nothing of the SDK outside transport/", () => {
    const dir = join(ROOT, "packages", "sdk", "src", "transport");
    for (const f of sources(dir)) {
      for (const t of importsOf(f)) assert.ok(t.startsWith(dir + "/"), `${relative(ROOT, f)} imports ${relative(ROOT, t)}`);
    }
  });

  it("keeps the SDK loadable outside Node: nothing it imports statically needs a Node module", () => {
    const seen = new Set<string>();
    const bare = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, "utf8");
      // Static imports only (import … from, export … from); import() is how Node-only parts load.
      for (const m of text.matchAll(/^(?:import|export)\s[^;]*?from\s+["']([^"']+)["']/gm)) {
        const spec = m[1]!;
        if (/^import type|^export type/.test(m[0])) continue;
        if (spec.startsWith(".")) visit(resolve(dirname(file), spec).replace(/\.js$/, ".ts"));
        else bare.add(spec);
      }
    };
    visit(join(ROOT, "packages", "sdk", "src", "index.ts"));
    const nodeOnly = [...bare].filter((s) => s.startsWith("node:") || s === "@cairn/blockio");
    assert.deepEqual(nodeOnly, []);
    assert.ok(seen.size > 5, `walked ${seen.size} files`);
  });

  it("keeps cairnd independent of the SDK (shared block I/O lives in @cairn/blockio)", () => {
    for (const f of sources(join(ROOT, "packages", "server", "src"))) {
      assert.doesNotMatch(readFileSync(f, "utf8"), /from\s+["']@cairn\/sdk/, relative(ROOT, f));
    }
  });

  it(`has no source file over ${MAX_LINES} lines without the reason at its top`, () => {
    const over: string[] = [];
    for (const pkg of PACKAGES) {
      for (const f of sources(join(ROOT, "packages", pkg, "src"))) {
        const text = readFileSync(f, "utf8");
        const lines = text.split("\n").length;
        if (lines > MAX_LINES && !/Over 500 lines because/.test(text.split("\n").slice(0, 20).join("\n"))) over.push(`${relative(ROOT, f)} (${lines})`);
      }
    }
    assert.deepEqual(over, []);
  });

  it("has comments that point inside the repository: no DESIGN.md, no issue numbers, no benchmark figures (bench/RESULTS.md has them)", () => {
    const bad: string[] = [];
    for (const pkg of PACKAGES) {
      for (const f of sources(join(ROOT, "packages", pkg, "src"))) {
        if (f.endsWith("architecture.test.ts")) continue;
        readFileSync(f, "utf8")
          .split("\n")
          .forEach((line, i) => {
            if (/DESIGN\.md|\(issue \d+\)|issue #\d+|\bMeasured\b|\d ?[MG]B\/s/.test(line)) bad.push(`${relative(ROOT, f)}:${i + 1}: ${line.trim()}`);
          });
      }
    }
    assert.deepEqual(bad, []);
  });
});
