/**
 * The OpenAPI document is the contract others generate clients from: every route is in it, once,
 * with what a generator needs, and Redocly's recommended rules find no error in it; and the error
 * codes it names are exactly those of the error table, which the README's table also lists.
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
import { ERROR_CODES } from "@cairn/protocol";
import { useFakeCairnd, codeOf } from "../testing/node-test.js";

interface Operation {
  operationId?: string;
  summary?: string;
  tags?: string[];
  parameters?: { name: string; in: string; required?: boolean }[];
  responses?: Record<string, unknown>;
}
interface Doc {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, { properties?: Record<string, { enum?: string[] }> }> };
}

const README = fileURLToPath(new URL("../../../../../README.md", import.meta.url));

/** The locally installed Redocly CLI (a root devDependency). */
const REDOCLY = join(dirname(createRequire(import.meta.url).resolve("@redocly/cli/package.json")), "bin", "cli.js");

/** Warnings of Redocly's recommended rules that stay, by rule, each with its reason. */
const ACCEPTED_WARNINGS: Record<string, string> = {
  "info-license": "the repository names no licence for cairnd; that is its owners' call, not the document's",
  "operation-4xx-response": "operations declare only a `default` problem response so far",
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
    assert.deepEqual(problems.filter((p) => !(p.ruleId in ACCEPTED_WARNINGS)).map(where), [], "a new warning: fix it, or keep it with its reason");
  });

  it("declares the problem+json error shape on every operation", async () => {
    for (const { path, method, op } of await operations()) {
      assert.ok(op.responses && Object.keys(op.responses).some((s) => s === "default" || /^[45]/.test(s)), `${method} ${path}: error responses`);
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
