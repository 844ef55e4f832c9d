/**
 * The OpenAPI document is the contract others generate clients from: every route is in it, once,
 * with what a generator needs, and Redocly's recommended rules find no error in it; each operation
 * declares the problem codes it answers with; and the error codes it names are exactly those of
 * the error table, which the README's table also lists.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ERROR_CODES, isErrorCode } from "@cairn/protocol";
import { useFakeCairnd, codeOf } from "../testing/node-test.js";

interface ProblemResponse {
  description: string;
  content?: Record<string, { schema: { allOf?: { properties?: { code?: { enum?: string[] } } }[] } }>;
}
interface Operation {
  operationId?: string;
  summary?: string;
  tags?: string[];
  security?: unknown[];
  parameters?: { name: string; in: string; required?: boolean }[];
  responses?: Record<string, ProblemResponse>;
}
interface Doc {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, { properties?: Record<string, { enum?: string[] }> }> };
}

const README = fileURLToPath(new URL("../../../../../README.md", import.meta.url));

/** The locally installed Redocly CLI (a root devDependency). */
const REDOCLY = join(dirname(createRequire(import.meta.url).resolve("@redocly/cli/package.json")), "bin", "cli.js");

/** Warnings of Redocly's recommended rules that stay, by rule and place, each with its reason. */
const ACCEPTED_WARNINGS: Record<string, string> = {
  "info-license #/info": "the repository names no licence for cairnd; that is its owners' call, not the document's",
  "operation-4xx-response #/paths/~1healthz/get/responses": "health takes no key and no input: no 4xx can happen",
  "operation-4xx-response #/paths/~1openapi.json/get/responses": "as health: no key, no input",
};

interface LintProblem {
  ruleId: string;
  severity: "error" | "warn";
  message: string;
  location: { pointer: string }[];
}

/** `redocly lint` with its recommended rules (said, not left to a config file it might find), as JSON. */
async function lint(doc: unknown): Promise<LintProblem[]> {
  const dir = await mkdtemp(join(tmpdir(), "cairn-openapi-"));
  try {
    await writeFile(join(dir, "openapi.json"), JSON.stringify(doc));
    await writeFile(join(dir, "redocly.yaml"), "extends:\n  - recommended\n");
    const args = [REDOCLY, "lint", join(dir, "openapi.json"), "--config", join(dir, "redocly.yaml"), "--format=json"];
    // No telemetry, no update check: the test talks to nobody. It exits 1 when it found errors.
    const env = { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" };
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, args, { env, maxBuffer: 64 * 1024 * 1024 }, (err, out, stderr) =>
        out.trimStart().startsWith("{") ? resolve(out) : reject(new Error(`redocly lint gave no report: ${err?.message ?? ""}\n${stderr}`)),
      ),
    );
    return (JSON.parse(stdout) as { problems: LintProblem[] }).problems;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("the OpenAPI document and the error table", () => {
  const cairnd = useFakeCairnd();
  let doc: Doc;
  const load = async () => (doc ??= JSON.parse((await cairnd().request({ method: "GET", url: "/openapi.json", key: null })).body) as Doc);
  const operations = async () => {
    const d = await load();
    return Object.entries(d.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })));
  };

  it("is OpenAPI 3.1", async () => {
    assert.match((await load()).openapi, /^3\.1\./);
  });

  it("routes every documented operation", async () => {
    for (const { path, method } of await operations()) {
      const url = path.replace(/\{(\w+)\}/g, "x");
      const r = await cairnd().request({ method: method.toUpperCase() as "GET", url, key: null });
      assert.ok(!(r.statusCode === 404 && codeOf(r) === "NOT_FOUND"), `${method} ${path} is documented but not routed`);
    }
  });

  it("gives every operation a unique operationId, a summary and a tag", async () => {
    const seen = new Set<string>();
    for (const { path, method, op } of await operations()) {
      assert.ok(op.operationId, `${method} ${path}: operationId`);
      assert.ok(!seen.has(op.operationId!), `operationId ${op.operationId} twice`);
      seen.add(op.operationId!);
      assert.ok(op.summary, `${method} ${path}: summary`);
      assert.ok(op.tags?.length, `${method} ${path}: tags`);
    }
    assert.ok(seen.size >= 50, `${seen.size} operations`);
  });

  it("declares every path parameter of every operation", async () => {
    for (const { path, method, op } of await operations()) {
      for (const [, name] of path.matchAll(/\{(\w+)\}/g)) {
        const p = op.parameters?.find((x) => x.name === name && x.in === "path");
        assert.ok(p, `${method} ${path}: path parameter ${name}`);
        assert.equal(p.required, true);
      }
    }
  });

  it("has no error under Redocly's recommended rules, and only the warnings we chose to keep", async () => {
    const problems = await lint(await load());
    const where = (p: LintProblem) => `${p.ruleId} ${p.location[0]?.pointer ?? ""}`;
    assert.deepEqual(problems.filter((p) => p.severity === "error").map((p) => `${where(p)}: ${p.message}`), []);
    assert.deepEqual(problems.map(where).filter((w) => !(w in ACCEPTED_WARNINGS)), [], "a new warning: fix it, or keep it with its reason");
  });

  it("declares on every operation the problem codes it answers with, each under its status", async () => {
    for (const { path, method, op } of await operations()) {
      const declared: string[] = [];
      for (const [status, response] of Object.entries(op.responses ?? {})) {
        if (!/^[45]\d\d$/.test(status)) continue;
        const codes = response.content?.["application/problem+json"]?.schema.allOf?.[1]?.properties?.code?.enum ?? [];
        assert.ok(codes.length > 0, `${method} ${path} ${status}: a Problem with its codes`);
        for (const code of codes) {
          assert.ok(isErrorCode(code) && String(ERROR_CODES[code].status) === status, `${method} ${path}: ${code} under ${status}`);
          assert.ok(response.description.includes(`\`${code}\``), `${method} ${path} ${status}: the description names ${code}`);
        }
        declared.push(...codes);
      }
      assert.ok(declared.includes("INTERNAL"), `${method} ${path}: INTERNAL`);
      if (op.security === undefined) assert.ok(declared.includes("UNAUTHORIZED"), `${method} ${path}: needs a key, so UNAUTHORIZED`);
      assert.ok(op.responses?.default, `${method} ${path}: a default (a proxy's error) for generators`);
    }
  });

  it("names exactly the codes of the error table", async () => {
    const problem = (await load()).components.schemas.Problem;
    assert.ok(problem, "a Problem schema");
    assert.deepEqual([...(problem.properties?.code?.enum ?? [])].sort(), Object.keys(ERROR_CODES).sort());
  });

  it("has the README's error table equal to the error table, code for code and status for status", () => {
    const readme = readFileSync(README, "utf8");
    const section = /<!-- error-codes:start -->([\s\S]*?)<!-- error-codes:end -->/.exec(readme)?.[1];
    assert.ok(section, "the README has its error-code table");
    const rows = [...section.matchAll(/^\| `([A-Z_]+)` \| (\d+) \| (.+) \|$/gm)].map((m) => [m[1], Number(m[2]), m[3]]);
    assert.deepEqual(
      rows,
      Object.entries(ERROR_CODES).map(([code, v]) => [code, v.status, v.title]),
    );
  });
});
