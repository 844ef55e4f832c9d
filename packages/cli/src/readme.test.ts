/**
 * The README's TypeScript examples compile against the SDK as it is: each block is type-checked
 * (strict) as its own module, with the names it uses from earlier blocks (cairn, volume, fs, …)
 * declared for it. A renamed method, option or result field fails here before a user copies it.
 * The shell examples run against a real cairnd in test/readme.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));

export interface Block {
  lang: string;
  code: string;
  section: string;
  line: number;
}

export function readmeBlocks(): Block[] {
  const text = readFileSync(join(ROOT, "README.md"), "utf8");
  const out: Block[] = [];
  let section = "";
  for (const m of text.matchAll(/^(#+ .*)$|^```(\w*)\n([\s\S]*?)^```$/gm)) {
    if (m[1]) section = m[1].replace(/^#+ /, "");
    else out.push({ lang: m[2] ?? "", code: m[3]!, section, line: text.slice(0, m.index).split("\n").length + 1 });
  }
  return out;
}

/** Names the examples take from the page around them, when a block does not make them itself. */
const CONTEXT: Record<string, string> = {
  cairn: 'declare const cairn: import("@cairn/sdk").Cairn;',
  volume: 'declare const volume: import("@cairn/sdk").Volume;',
  cache: 'declare const cache: import("@cairn/sdk").Volume;',
  fs: 'import * as fs from "node:fs";',
  signal: "declare const signal: AbortSignal;",
  tarGzOfTheAppDirectory: "declare const tarGzOfTheAppDirectory: Uint8Array;",
  tarGz: "declare const tarGz: Uint8Array;",
};

function moduleOf(block: Block): string {
  const own = new Set([...block.code.matchAll(/\b(?:const|let|var)\s+(?:\{([^}]*)\}|(\w+))/g)].flatMap((m) => (m[1] ? m[1].split(",").map((x) => x.split(":").pop()!.trim()) : [m[2]!])));
  for (const m of block.code.matchAll(/import\s*\{([^}]*)\}/g)) for (const n of m[1]!.split(",")) own.add(n.trim().split(/\s+as\s+/).pop()!);
  const prelude = Object.entries(CONTEXT)
    .filter(([name]) => !own.has(name) && new RegExp(`\\b${name}\\b`).test(block.code))
    .map(([, decl]) => decl);
  return `${prelude.join("\n")}\n${block.code}\nexport {};\n`;
}

describe("README TypeScript examples", () => {
  const blocks = readmeBlocks().filter((b) => b.lang === "ts");

  it("are there to check", () => {
    assert.ok(blocks.length >= 6, `${blocks.length} blocks`);
  });

  it("compile against the SDK, strict, each as the page shows it", () => {
    const files = new Map(blocks.map((b, i) => [join(ROOT, "packages", "cli", `readme-example-${i}.ts`), moduleOf(b)]));
    const options: ts.CompilerOptions = {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ["node"],
      lib: ["lib.es2023.d.ts", "lib.dom.d.ts"],
    };
    const host = ts.createCompilerHost(options);
    const read = host.readFile.bind(host);
    host.readFile = (f) => files.get(f) ?? read(f);
    const exists = host.fileExists.bind(host);
    host.fileExists = (f) => files.has(f) || exists(f);
    const program = ts.createProgram([...files.keys()], options, host);
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file && files.has(d.file.fileName))
      .map((d) => {
        const i = [...files.keys()].indexOf(d.file!.fileName);
        const b = blocks[i]!;
        const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
        const preludeLines = moduleOf(b).split("\n").length - b.code.split("\n").length - 1;
        return `README.md:${b.line + line - preludeLines} (${b.section}): ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
      });
    assert.deepEqual(problems, []);
  });
});

