/**
 * The file commands of the built `cairn` binary against a real cairnd: directory round trips
 * (byte-identical, modes, mtimes and symlinks kept), large and resumable uploads (a killed upload
 * continues where it stopped), stdin, and the small verbs with their exit codes.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startCairnd, type CairndProcess } from "@cairn/server/testing";

const CLI = fileURLToPath(new URL("../src/main.js", import.meta.url));

let cairnd: CairndProcess;
let scratch: string;

before(async () => {
  cairnd = await startCairnd();
  scratch = await mkdtemp(join(tmpdir(), "cairn-cli-files-test-"));
});
after(async () => {
  await cairnd?.destroy();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: Buffer;
  out: string;
  stderr: string;
}

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("CAIRN_")) e[k] = v;
  return { ...e, CAIRN_URL: cairnd.url, CAIRN_API_KEY: cairnd.adminKey, XDG_CACHE_HOME: join(scratch, "cache"), ...extra };
}

function cairn(args: string[], options: { input?: Buffer | string; cwd?: string; killAfter?: (stderr: string, stdout: string) => boolean } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: env(), cwd: options.cwd ?? scratch, stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out);
      resolve({ code, stdout, out: stdout.toString(), stderr });
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}

const ok = (r: Run) => assert.equal(r.code, 0, `exit ${r.code}\nstderr: ${r.stderr}\nstdout: ${r.out.slice(0, 2000)}`);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Every entry under a directory: type, mode, mtime (s), content hash or link target. */
async function describeTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string, rel: string) => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out[r] = `link -> ${await readlink(p)}`;
      else if (st.isDirectory()) {
        out[r] = `dir ${mode}`;
        await walk(p, r);
      } else out[r] = `file ${mode} ${Math.floor(st.mtimeMs / 1000)} ${sha(await readFile(p))}`;
    }
  };
  await walk(root, "");
  return out;
}

describe("cairn volume file commands", () => {
  before(async () => {
    ok(await cairn(["volume", "create", "cli-files", "--size", "2GiB"]));
  });

  it("put and get a directory: byte-identical, modes, mtimes and symlinks kept", async () => {
    const src = join(scratch, "tree");
    await mkdir(join(src, "a", "b", "c"), { recursive: true });
    await mkdir(join(src, "empty"));
    await writeFile(join(src, "a", "run.sh"), "#!/bin/sh\necho hi\n");
    await chmod(join(src, "a", "run.sh"), 0o755);
    await writeFile(join(src, "a", "b", "secret"), randomBytes(1000));
    await chmod(join(src, "a", "b", "secret"), 0o600);
    await writeFile(join(src, "a", "b", "c", "big.bin"), randomBytes(5 * 1024 * 1024 + 3));
    for (let i = 0; i < 300; i++) await writeFile(join(src, "a", `small-${i}.txt`), `file ${i}\n`);
    await symlink("a/run.sh", join(src, "link"));
    await symlink("/etc/passwd", join(src, "abs-link"));
    await utimes(join(src, "a", "b", "secret"), new Date("2021-05-06T07:08:09Z"), new Date("2021-05-06T07:08:09Z"));
    const put = await cairn(["volume", "put", src, "cli-files", "/proj"]);
    ok(put);
    assert.equal(put.out, "", "quiet when piped unless --json");
    const got = await cairn(["volume", "get", "cli-files", "/proj", join(scratch, "back")]);
    ok(got);
    assert.deepEqual(await describeTree(join(scratch, "back")), await describeTree(src));
    // --json prints what was done
    const again = await cairn(["volume", "put", src, "cli-files", "/proj2", "--json"]);
    ok(again);
    const r = JSON.parse(again.out) as { files: number; symlinks: number; path: string };
    assert.equal(r.files, 303);
    assert.equal(r.symlinks, 2);
    assert.equal(r.path, "/proj2");
  });

  it("put and get single files, stdin and stdout; large files go resumable", async () => {
    const big = randomBytes(70 * 1024 * 1024);
    await writeFile(join(scratch, "big.bin"), big);
    ok(await cairn(["volume", "put", join(scratch, "big.bin"), "cli-files", "/files/"]));
    const back = await cairn(["volume", "get", "cli-files", "/files/big.bin", "-"]);
    ok(back);
    assert.equal(sha(back.stdout), sha(big));
    ok(await cairn(["volume", "get", "cli-files", "/files/big.bin", join(scratch, "big-back.bin")]));
    assert.equal(sha(await readFile(join(scratch, "big-back.bin"))), sha(big));
    ok(await cairn(["volume", "put", "-", "cli-files", "/files/stdin.txt"], { input: "from stdin\n" }));
    assert.equal((await cairn(["volume", "get", "cli-files", "/files/stdin.txt", "-"])).out, "from stdin\n");
    // Into an existing local directory: keeps the name.
    ok(await cairn(["volume", "get", "cli-files", "/files/stdin.txt", scratch]));
    assert.equal(await readFile(join(scratch, "stdin.txt"), "utf8"), "from stdin\n");
    const missing = await cairn(["volume", "get", "cli-files", "/files/nope", "-"]);
    assert.equal(missing.code, 3, missing.stderr);
    // A local path that cannot be written is the user's to fix: a usage error that names it.
    const unwritable = await cairn(["volume", "get", "cli-files", "/files/stdin.txt", join(scratch, "no-such-dir", "x.txt")]);
    assert.equal(unwritable.code, 2, unwritable.stderr);
    assert.match(unwritable.stderr, /Cannot write .*no-such-dir.*ENOENT/);
  });

  it("a killed resumable upload continues where it stopped when run again", async () => {
    const data = randomBytes(160 * 1024 * 1024);
    const file = join(scratch, "resume.bin");
    await writeFile(file, data);
    // Kill the CLI once the server has some of it (the upload record appears in the cache).
    const state = join(scratch, "cache", "cairn", "uploads.json");
    const first = spawn(process.execPath, [CLI, "volume", "put", file, "cli-files", "/resume.bin", "--chunk-size", "8MiB"], { env: env(), stdio: "ignore" });
    let url: string | undefined;
    for (let i = 0; i < 600 && !url; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const s = await readFile(state, "utf8").catch(() => "{}");
      url = Object.values(JSON.parse(s) as Record<string, { url: string }>)[0]?.url;
    }
    assert.ok(url, "the upload was recorded for resuming");
    // Let a few chunks land, then kill it mid-transfer.
    const offsetOf = async () => Number((await fetch(url!, { method: "HEAD", headers: { authorization: `Bearer ${cairnd.adminKey}`, "tus-resumable": "1.0.0" } })).headers.get("upload-offset"));
    // (up to a minute: a loaded machine is slow, and killing before any chunk landed proves nothing)
    for (let i = 0; i < 2400 && (await offsetOf()) < 24 * 1024 * 1024; i++) await new Promise((r) => setTimeout(r, 25));
    first.kill("SIGKILL");
    await new Promise((r) => first.once("close", r));
    const stored = await offsetOf();
    assert.ok(stored > 0 && stored < data.length, `part of it was stored durably (${stored})`);
    // Run the same command again: it resumes the same upload.
    ok(await cairn(["volume", "put", file, "cli-files", "/resume.bin", "--chunk-size", "8MiB"]));
    const status = (await (await fetch(url, { headers: { authorization: `Bearer ${cairnd.adminKey}` } })).json()) as { state: string; offset: number };
    assert.equal(status.state, "completed", "the first upload was finished, not a new one started");
    assert.equal(status.offset, data.length);
    assert.equal(sha((await cairn(["volume", "get", "cli-files", "/resume.bin", "-"])).stdout), sha(data));
    assert.equal(Object.keys(JSON.parse(await readFile(state, "utf8")) as object).length, 0, "the record is dropped when done");
  });

  it("ls, stat, mkdir, mv, remove, edit, search, replace, archive and sign, with their exit codes", async () => {
    ok(await cairn(["volume", "put", "-", "cli-files", "/v/app.toml"], { input: "port = 8080\nhost = a\nhost = a\n" }));
    ok(await cairn(["volume", "mkdir", "cli-files", "/v/sub/deep", "--mode", "750"]));
    const ls = JSON.parse((await cairn(["volume", "ls", "cli-files", "/v", "-R"])).out) as { path: string; type: string; mode: number }[];
    assert.deepEqual(ls.map((e) => e.path), ["/v/app.toml", "/v/sub", "/v/sub/deep"]);
    assert.equal(ls.find((e) => e.path === "/v/sub/deep")!.mode, 0o750);
    const st = JSON.parse((await cairn(["volume", "stat", "cli-files", "/v/app.toml"])).out) as { type: string; size: number; etag: string };
    assert.equal(st.type, "file");
    assert.equal(st.size, 30);
    assert.equal((await cairn(["volume", "stat", "cli-files", "/v/nope"])).code, 3, "not found");
    const ambiguous = await cairn(["volume", "edit", "cli-files", "/v/app.toml", "--old", "host = a", "--new", "host = b"]);
    assert.equal(ambiguous.code, 4, ambiguous.stderr);
    assert.match(ambiguous.stderr, /EDIT_AMBIGUOUS/);
    ok(await cairn(["volume", "edit", "cli-files", "/v/app.toml", "--old", "port = 8080", "--new", "port = 9090"]));
    const found = JSON.parse((await cairn(["volume", "search", "cli-files", "port", "--path", "/v"])).out) as { matches: { path: string; line: number; text: string }[] };
    assert.deepEqual(found.matches, [{ path: "/v/app.toml", line: 1, text: "port = 9090" }]);
    const dry = JSON.parse((await cairn(["volume", "replace", "cli-files", "host = a", "host = c", "--path", "/v", "--dry-run"])).out) as { filesChanged: number; replacements: number };
    assert.deepEqual([dry.filesChanged, dry.replacements], [1, 2]);
    ok(await cairn(["volume", "replace", "cli-files", "host = (\\w)", "host = $1$1", "--regex", "--path", "/v"]));
    assert.equal((await cairn(["volume", "get", "cli-files", "/v/app.toml", "-"])).out, "port = 9090\nhost = aa\nhost = aa\n");
    ok(await cairn(["volume", "mv", "cli-files", "/v/app.toml", "/v/sub/app.toml"]));
    ok(await cairn(["volume", "put", "-", "cli-files", "/v/other.toml"], { input: "x" }));
    const clash = await cairn(["volume", "mv", "cli-files", "/v/other.toml", "/v/sub/app.toml"]);
    assert.equal(clash.code, 4, clash.stderr);
    const notEmpty = await cairn(["volume", "remove", "cli-files", "/v/sub"]);
    assert.equal(notEmpty.code, 4, notEmpty.stderr);
    // archive to stdout, readable by tar
    const tar = await cairn(["volume", "archive", "cli-files", "/v"]);
    ok(tar);
    // archive into a file: whole under its name, or (a path that cannot be written) a usage error naming it
    ok(await cairn(["volume", "archive", "cli-files", "/v", "-o", join(scratch, "v.tar")]));
    assert.ok((await readFile(join(scratch, "v.tar"))).length > 0);
    const badOut = await cairn(["volume", "archive", "cli-files", "/v", "-o", join(scratch, "nowhere", "v.tar")]);
    assert.equal(badOut.code, 2, badOut.stderr);
    assert.match(badOut.stderr, /Cannot write .*nowhere.*ENOENT/);
    assert.deepEqual((await readdir(scratch)).filter((n) => n.includes("cairn-partial")), [], "no partial file left");
    const listing = await new Promise<string>((resolve) => {
      const t = spawn("tar", ["-t"], { stdio: ["pipe", "pipe", "ignore"] });
      let s = "";
      t.stdout.on("data", (d) => (s += d));
      t.on("close", () => resolve(s));
      t.stdin.end(tar.stdout);
    });
    assert.match(listing, /\.\/sub\/app\.toml/);
    // a signed URL works with no key
    const url = (await cairn(["volume", "sign", "cli-files", "/v/sub/app.toml", "--expires", "5m"])).out.trim();
    assert.equal(await (await fetch(url)).text(), "port = 9090\nhost = aa\nhost = aa\n");
    assert.equal((await cairn(["volume", "sign", "cli-files", "/v/x", "--expires", "9d"])).code, 2, "more than 7 days is a usage error");
    ok(await cairn(["volume", "remove", "cli-files", "/v", "-r"]));
    assert.equal((await cairn(["volume", "stat", "cli-files", "/v"])).code, 3);
  });

  it("shows a progress bar on a terminal, nothing when piped", async () => {
    const src = join(scratch, "progress");
    await mkdir(src);
    await writeFile(join(src, "f.bin"), randomBytes(30 * 1024 * 1024));
    const command = [process.execPath, CLI, "volume", "put", src, "cli-files", "/progress"].map((a) => `'${a}'`).join(" ");
    const r = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn("script", ["-qec", command, "/dev/null"], { env: env({ NO_COLOR: "1" }), stdio: ["pipe", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, out }));
      child.stdin.end();
    });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /uploading progress .*%/);
    assert.match(r.out, /✓ extracted 1 files/);
    const piped = await cairn(["volume", "put", src, "cli-files", "/progress2"]);
    ok(piped);
    assert.equal(piped.stderr, "", "no progress bar when stderr is not a terminal");
  });
});
