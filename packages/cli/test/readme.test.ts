/**
 * The README's shell examples, run as written against a real cairnd (the TypeScript ones are
 * type-checked in src/readme.test.ts). Each block runs as one bash script with `set -e` in a
 * directory holding the local files it names; the few lines that cannot run here are listed
 * below with the reason, and replaced by `:`.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Cairn } from "@cairn/sdk";
import { startCairnd, type CairndProcess } from "@cairn/server/testing";
import { readmeBlocks } from "../src/readme.test.js";
import { killAllSandboxes } from "./helpers.js";

const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
const BIN = join(ROOT, "node_modules", ".bin");

/** Lines that cannot run in a test, by a piece of their text, with the reason. */
const SKIP: [string, string][] = [
  ["npm start", "starts a server in the foreground; the test starts its own"],
  ["npm test", "is the suite this test is part of"],
  ["npm pack", "tried by hand (packs, installs, imports); slow for every run"],
  ["npm install ../cairn", "belongs to npm pack's step"],
  ["pg_dump", "needs PostgreSQL and a database to dump"],
  ["cairn volume watch", "runs until Ctrl-C"],
  ["logs shop --follow", "runs until its version stops (test/deploy.test.ts follows one)"],
  ["node:20", "needs Docker Hub; server/test/images.test.ts pulls from a registry it starts"],
  ["127.0.0.1:5000/team/tool", "needs a registry there; server/test/images.test.ts starts its own"],
  ["./tool.tar", "needs an image archive; server/test/images.test.ts imports one"],
];

function script(code: string, port: string): string {
  const lines = code.split("\n").map((line) => {
    const skip = SKIP.find(([piece]) => line.includes(piece));
    if (skip) return `: # skipped (${skip[1]}): ${line.replaceAll("'", "")}`;
    // The one placeholder (the key cairnd printed), and the default port: the test's cairnd has its own.
    return line
      .replace("CAIRN_URL=http://127.0.0.1:7070 CAIRN_API_KEY=<printed key>", 'CAIRN_URL="$TEST_URL" CAIRN_API_KEY="$TEST_KEY"')
      .replaceAll(":7070", `:${port}`);
  });
  return `set -euo pipefail\n${lines.join("\n")}\n`;
}

function bash(code: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", code], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let stdout = "";
    child.stdout.on("data", (d) => ((out += d), (stdout += d)));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 240_000);
    child.on("error", reject);
    child.on("close", (c) => {
      clearTimeout(timer);
      resolve({ code: c, out, stdout });
    });
  });
}

describe("README shell examples", () => {
  let c: CairndProcess;
  let work: string;
  let env: NodeJS.ProcessEnv;
  const blocks = readmeBlocks().filter((b) => b.lang === "sh");

  before(async () => {
    c = await startCairnd();
    work = await mkdtemp(join(tmpdir(), "cairn-readme-"));
    const base: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("CAIRN_")) base[k] = v;
    const url = c.url.replace("localhost", "127.0.0.1");
    env = { ...base, TEST_URL: url, TEST_KEY: c.adminKey, TEST_PORT: new URL(url).port, CAIRN_URL: url, CAIRN_API_KEY: c.adminKey, PATH: `${BIN}:${process.env.PATH}` };
    // The local files the examples name.
    await mkdir(join(work, "site"), { recursive: true });
    await writeFile(join(work, "site", "index.html"), "<h1>hello</h1>\n");
    await writeFile(join(work, "model.bin"), Buffer.alloc(1024 * 1024, 1));
    await mkdir(join(work, "app"), { recursive: true });
    await writeFile(
      join(work, "app", "main.py"),
      'import os, http.server\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"ok")\nhttp.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()\n',
    );
  });
  after(async () => {
    if (c) {
      const sdk = new Cairn({ url: c.url, apiKey: c.adminKey });
      for (const app of new Set((await sdk.deployments.list().catch(() => [])).map((d) => d.app))) await sdk.deployments.remove({ app }).catch(() => undefined);
      await killAllSandboxes(c).catch(() => undefined);
      await c.destroy();
    }
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** What a block needs in the volumes before it runs (the page says it exists by then). */
  async function setUp(section: string): Promise<void> {
    const cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
    if (section === "Files" || section === "CLI") {
      const v = await cairn.volumes.fromName("team-data", { createIfMissing: true });
      await v.files.writeMany([
        { path: "/inbox/a.csv", content: "a,b\n" },
        { path: "/cache/x", content: "x" },
        { path: "/app.toml", content: "port = 8080\n" },
        { path: "/src/main.ts", content: "// TODO: more\n" },
        { path: "/docs/readme.md", content: "Cairn v1\n" },
        { path: "/report.pdf", content: "%PDF-1.7\n" },
        { path: "/hello.txt", content: "persistent\n" },
      ]);
      await cairn.volumes.fromName("data", { createIfMissing: true });
      await cairn.volumes.fromName("cache", { createIfMissing: true });
    }
  }

  it("has shell examples to run", () => {
    assert.ok(blocks.length >= 4, `${blocks.length} blocks`);
  });

  for (const b of readmeBlocks().filter((x) => x.lang === "sh")) {
    it(`runs the ${b.section} example at README.md:${b.line}`, async () => {
      await setUp(b.section);
      const cwd = b.section === "SDK" || b.section === "Quick start" ? dirname(join(ROOT, "README.md")) : work;
      // The Deployments example reaches the app "shop": deploy it first.
      const prefix = b.section === "Deployments" ? "cairn deploy ./app --project shop > /dev/null\n" : "";
      const r = await bash(prefix + script(b.code, env.TEST_PORT!), b.section === "Quick start" ? work : cwd, env);
      if (b.section === "Deployments") assert.equal(r.stdout, "okok", r.out);
      assert.equal(r.code, 0, `README.md:${b.line} (${b.section}) failed:\n${script(b.code, env.TEST_PORT!)}\n--- output ---\n${r.out.slice(-3000)}`);
    });
  }
});
