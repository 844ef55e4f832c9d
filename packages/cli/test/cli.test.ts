/**
 * The built `cairn` binary against a real cairnd: the command sequence of the issue, byte-exact
 * file round trips, exit codes per error code, help texts, and the terminal (TTY) output.
 * Needs root (cairnd makes loop devices and mounts); one cairnd for the whole file.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startCairnd, type CairndProcess } from "@cairn/server/testing";

const CLI = fileURLToPath(new URL("../src/main.js", import.meta.url));
const GiB = 1024 ** 3;
const NAME_MESSAGE = "Volume name must be lowercase alphanumeric, underscores or hyphens";
const VERBS = ["create", "list", "get", "write", "read", "resize", "label", "delete"];

let cairnd: CairndProcess;
let scratch: string;


interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
  /** stdout as text. */
  out: string;
}

/** The environment a user would have: the two variables, nothing else of Cairn's. */
function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("CAIRN_")) env[k] = v;
  return { ...env, CAIRN_URL: cairnd.url, CAIRN_API_KEY: cairnd.adminKey, ...extra };
}

/** Run the built CLI with pipes (so neither stdout nor stderr is a terminal). */
function cairn(args: string[], options: { input?: string | Buffer; env?: Record<string, string>; keepStdinOpen?: boolean } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: cliEnv(options.env),
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    // A hang is a failure with the output so far, not a test-runner timeout with nothing to read.
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      child.stdin?.destroy();
      const stdout = Buffer.concat(out);
      resolve({ code, stdout, stderr, out: stdout.toString() });
    });
    if (options.input !== undefined) {
      child.stdin!.on("error", () => undefined); // EPIPE when the CLI stops reading early
      if (options.keepStdinOpen) child.stdin!.write(options.input);
      else child.stdin!.end(options.input);
    }
  });
}

const json = <T = unknown>(r: Run): T => {
  try {
    return JSON.parse(r.out) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${r.code}):\n${r.out}\nstderr:\n${r.stderr}`);
  }
};
/** The last stderr line is the error as JSON, since stderr is not a terminal here. */
const problem = (r: Run) => {
  const line = r.stderr.trim().split("\n").at(-1) ?? "";
  try {
    return (JSON.parse(line) as { error: { code: string; detail: string; status?: number; requestId?: string } }).error;
  } catch {
    throw new Error(`stderr is not a JSON error (exit ${r.code}):\n${r.stderr}`);
  }
};
const ok = (r: Run) => assert.equal(r.code, 0, `exit ${r.code}\nstdout:\n${r.out}\nstderr:\n${r.stderr}`);
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

interface VolumeJson {
  id: string;
  name: string;
  sizeBytes: number;
  filesystem: string;
  accessMode: string;
  status: string;
  labels: Record<string, string>;
}

// One suite around everything: its hooks run even when a test name filter skips every test.
describe("cairn CLI", () => {
  before(async () => {
    cairnd = await startCairnd();
    scratch = await mkdtemp(join(tmpdir(), "cairn-cli-test-"));
  });
  after(async () => {
    try {
      await cairnd?.destroy();
    } finally {
      if (scratch) await rm(scratch, { recursive: true, force: true });
    }
  });

  describe("help", () => {
    it("cairn --help lists the commands and the exit-code table", async () => {
      const r = await cairn(["--help"]);
      ok(r);
      assert.match(r.out, /Usage: cairn/);
      assert.match(r.out, /volume/);
      assert.match(r.out, /server/);
      assert.match(r.out, /Exit codes:/);
      assert.match(r.out, /3 {2}not found\s+NOT_FOUND, PROJECT_NOT_FOUND, VOLUME_NOT_FOUND/);
      const conflicts = /4 {2}conflict[\s\S]*?(?=\n {4}5 )/.exec(r.out)?.[0] ?? "";
      assert.match(conflicts, /VOLUME_SHRINK_NOT_ALLOWED/);
      assert.match(conflicts, /PRECONDITION_FAILED/);
      assert.match(r.out, /5 {2}not authorised\s+UNAUTHORIZED, FORBIDDEN/);
      assert.match(r.out, /7 {2}cairnd \(or a registry behind it\) unreachable or unavailable\s+UNAVAILABLE/);
    });

    it("the built entry point is a node script with a shebang", async () => {
      const { readFile } = await import("node:fs/promises");
      assert.match(await readFile(CLI, "utf8"), /^#!\/usr\/bin\/env node\n/);
    });

    it("cairn volume --help lists every verb", async () => {
      const r = await cairn(["volume", "--help"]);
      ok(r);
      for (const verb of VERBS) assert.match(r.out, new RegExp(`^ {2}${verb}\\b`, "m"), `volume --help lacks ${verb}`);
    });

    for (const verb of VERBS) {
      it(`cairn volume ${verb} --help shows usage and examples`, async () => {
        const r = await cairn(["volume", verb, "--help"]);
        ok(r);
        assert.match(r.out, new RegExp(`Usage: cairn volume ${verb}`));
        assert.match(r.out, /Examples:/);
        assert.match(r.out, new RegExp(`\\$ cairn volume ${verb} `));
        assert.match(r.out, /--json/, "global options are shown too");
      });
    }

    it("cairn server --help is cairnd's own help", async () => {
      const r = await cairn(["server", "--help"]);
      ok(r);
      assert.match(r.out, /Usage: cairn server/);
      assert.match(r.out, /--data-dir <dir>/);
      assert.match(r.out, /--listen/);
      assert.match(r.out, /--region/);
    });

    it("cairn server rejects an unknown flag with exit 2", async () => {
      const r = await cairn(["server", "--no-such-flag"]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /no-such-flag/);
    });
  });

  describe("the issue's command sequence", () => {
    let teamDataId = "";

    it("create: 1 GiB ext4 ReadWriteOnce by default, JSON when piped", async () => {
      const r = await cairn(["volume", "create", "team-data"]);
      ok(r);
      const v = json<VolumeJson>(r);
      assert.equal(v.name, "team-data");
      assert.equal(v.sizeBytes, 1 * GiB);
      assert.equal(v.filesystem, "ext4");
      assert.equal(v.accessMode, "ReadWriteOnce");
      assert.equal(v.status, "ready");
      assert.deepEqual(v.labels, {});
      assert.match(v.id, /^vol_/);
      teamDataId = v.id;
    });

    it("create with --size 10GiB --access-mode ReadWriteMany --label team=ml", async () => {
      const r = await cairn(["volume", "create", "big_vol", "--size", "10GiB", "--access-mode", "ReadWriteMany", "--label", "team=ml"]);
      ok(r);
      const v = json<VolumeJson>(r);
      assert.equal(v.name, "big_vol");
      assert.equal(v.sizeBytes, 10 * GiB);
      assert.equal(v.accessMode, "ReadWriteMany");
      assert.deepEqual(v.labels, { team: "ml" });
    });

    it("create of an existing name fails with exit 4; --if-missing returns the existing one", async () => {
      const dup = await cairn(["volume", "create", "team-data"]);
      assert.equal(dup.code, 4);
      assert.equal(problem(dup).code, "VOLUME_ALREADY_EXISTS");
      const again = await cairn(["volume", "create", "team-data", "--if-missing", "--size", "5GiB"]);
      ok(again);
      const v = json<VolumeJson>(again);
      assert.equal(v.id, teamDataId);
      assert.equal(v.sizeBytes, 1 * GiB, "the existing volume is returned as it is");
    });

    it("list prints a JSON array of every volume when piped", async () => {
      const r = await cairn(["volume", "list"]);
      ok(r);
      const items = json<VolumeJson[]>(r);
      assert.ok(Array.isArray(items));
      assert.deepEqual(items.map((v) => v.name), ["big_vol", "team-data"]);
      assert.equal(items.find((v) => v.name === "big_vol")?.sizeBytes, 10 * GiB);
    });

    it("list --field gives only those keys (repeated or comma-separated)", async () => {
      for (const args of [["--field", "name", "--field", "sizeBytes"], ["--field", "name,sizeBytes"]]) {
        const r = await cairn(["volume", "list", ...args]);
        ok(r);
        const items = json<Record<string, unknown>[]>(r);
        assert.equal(items.length, 2);
        for (const item of items) assert.deepEqual(Object.keys(item), ["name", "sizeBytes"]);
        assert.deepEqual(items[1], { name: "team-data", sizeBytes: 1 * GiB });
      }
    });

    it("list --field with an unknown field is a usage error naming the valid ones", async () => {
      const r = await cairn(["volume", "list", "--field", "nosuch"]);
      assert.equal(r.code, 2);
      assert.match(problem(r).detail, /Unknown field "nosuch"/);
    });

    it("list --label filters; --limit gives one page and the cursor of the next", async () => {
      const ml = await cairn(["volume", "list", "--label", "team=ml", "--field", "name"]);
      ok(ml);
      assert.deepEqual(json(ml), [{ name: "big_vol" }]);

      const first = await cairn(["volume", "list", "--limit", "1", "--field", "name"]);
      ok(first);
      assert.deepEqual(json(first), [{ name: "big_vol" }]);
      const cursor = /--cursor (\S+)/.exec(first.stderr)?.[1];
      assert.ok(cursor, `no cursor on stderr: ${first.stderr}`);
      const second = await cairn(["volume", "list", "--limit", "1", "--cursor", cursor, "--field", "name"]);
      ok(second);
      assert.deepEqual(json(second), [{ name: "team-data" }]);
    });

    it("get by name and by id; --field picks keys", async () => {
      const byName = await cairn(["volume", "get", "team-data"]);
      ok(byName);
      assert.equal(json<VolumeJson>(byName).id, teamDataId);
      const byId = await cairn(["volume", "get", teamDataId]);
      ok(byId);
      assert.equal(json<VolumeJson>(byId).name, "team-data");
      const picked = await cairn(["volume", "get", "big_vol", "--field", "accessMode,labels"]);
      ok(picked);
      assert.deepEqual(json(picked), { accessMode: "ReadWriteMany", labels: { team: "ml" } });
    });

    it("write from stdin, then read prints exactly what was written", async () => {
      const w = await cairn(["volume", "write", "team-data", "/hello.txt"], { input: "persistent\n" });
      ok(w);
      assert.equal(w.out, "", "quiet on success when piped");
      assert.equal(w.stderr, "", "quiet on success when piped");
      const r = await cairn(["volume", "read", "team-data", "/hello.txt"]);
      ok(r);
      assert.equal(r.out, "persistent\n");
    });

    it("3 MiB of random bytes round-trip byte for byte; --range reads a slice", async () => {
      const data = randomBytes(3 * 1024 * 1024);
      const w = await cairn(["volume", "write", "team-data", "/bin/random.bin"], { input: data });
      ok(w);
      const r = await cairn(["volume", "read", "team-data", "/bin/random.bin"]);
      ok(r);
      assert.equal(r.stdout.length, data.length);
      assert.equal(sha256(r.stdout), sha256(data));

      const slice = await cairn(["volume", "read", "team-data", "/bin/random.bin", "--range", "1000-1999"]);
      ok(slice);
      assert.ok(slice.stdout.equals(data.subarray(1000, 2000)), "range 1000-1999 is bytes 1000..1999");
      const tail = await cairn(["volume", "read", "team-data", "/bin/random.bin", "--range", `${data.length - 10}-`]);
      ok(tail);
      assert.ok(tail.stdout.equals(data.subarray(data.length - 10)));

      // A reader that stops early (`| head`) makes the write side fail with EPIPE: quiet, exit 0.
      const script = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} volume read team-data /bin/random.bin | head -c 10 | wc -c; echo "exit=\${PIPESTATUS[0]}"`;
      const piped = spawnSync("bash", ["-c", script], { env: cliEnv(), encoding: "utf8", timeout: 60_000 });
      assert.match(piped.stdout, /^10\nexit=0\n$/);
      assert.equal(piped.stderr, "");
    });

    it("Ctrl-C during an upload exits 130 and leaves no partial file", async () => {
      const child = spawn(process.execPath, [CLI, "volume", "write", "team-data", "/partial.bin"], { env: cliEnv(), stdio: ["pipe", "pipe", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      // Keep stdin open and flowing, as a slow producer would.
      child.stdin.write(randomBytes(1024 * 1024));
      child.stdin.on("error", () => undefined);
      await new Promise((r) => setTimeout(r, 1500));
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
      clearTimeout(timer);
      child.stdin.destroy();
      assert.equal(code, 130, stderr);
      assert.equal(problem({ code, stdout: Buffer.alloc(0), stderr, out: "" }).code, "INTERRUPTED");
      const r = await cairn(["volume", "read", "team-data", "/partial.bin"]);
      assert.equal(r.code, 3, "an interrupted write is not committed");
    });

    it("write --from a local file, with --json printing the result", async () => {
      const file = join(scratch, "local.bin");
      const data = randomBytes(200_000);
      await writeFile(file, data);
      const w = await cairn(["volume", "write", "team-data", "/from-file.bin", "--from", file, "--json"]);
      ok(w);
      const result = json<{ path: string; size: number }>(w);
      assert.equal(result.path, "/from-file.bin");
      assert.equal(result.size, data.length);
      const r = await cairn(["volume", "read", "team-data", "/from-file.bin"]);
      assert.equal(sha256(r.stdout), sha256(data));

      const missing = await cairn(["volume", "write", "team-data", "/x", "--from", join(scratch, "nope")]);
      assert.equal(missing.code, 2);
      assert.match(problem(missing).detail, /Cannot read --from .*nope: ENOENT/);
    });

    it("read of a missing path is exit 3 with PATH_NOT_FOUND, and nothing on stdout", async () => {
      const r = await cairn(["volume", "read", "team-data", "/missing.txt"]);
      assert.equal(r.code, 3);
      assert.equal(problem(r).code, "PATH_NOT_FOUND");
      assert.equal(r.out, "");
    });

    it("resize to 2GiB reports a grow", async () => {
      const r = await cairn(["volume", "resize", "team-data", "--size", "2GiB"]);
      ok(r);
      const { volume, resize } = json<{ volume: VolumeJson; resize: { mode: string; previousSizeBytes: number } }>(r);
      assert.equal(volume.sizeBytes, 2 * GiB);
      assert.equal(resize.previousSizeBytes, 1 * GiB);
      assert.ok(["online", "offline"].includes(resize.mode), `mode ${resize.mode}`);
      const after = await cairn(["volume", "read", "team-data", "/hello.txt"]);
      assert.equal(after.out, "persistent\n", "data survives the grow");
    });

    it("resize to 1GiB (a shrink) fails with exit 4 and says it cannot shrink", async () => {
      const r = await cairn(["volume", "resize", "team-data", "--size", "1GiB"]);
      assert.equal(r.code, 4);
      const p = problem(r);
      assert.equal(p.code, "VOLUME_SHRINK_NOT_ALLOWED");
      assert.equal(p.status, 409);
      assert.match(p.detail, /shrink/i);
      assert.match(p.requestId ?? "", /^req_/);
      const v = json<VolumeJson>(await cairn(["volume", "get", "team-data"]));
      assert.equal(v.sizeBytes, 2 * GiB, "size unchanged");
    });

    it("resize without a size, or with a bad one, is a usage error", async () => {
      const none = await cairn(["volume", "resize", "team-data"]);
      assert.equal(none.code, 2);
      assert.match(problem(none).detail, /--size/);
      const bad = await cairn(["volume", "resize", "team-data", "--size", "lots"]);
      assert.equal(bad.code, 2);
      assert.equal(problem(bad).code, "INVALID_SIZE");
    });

    it("label replaces all labels", async () => {
      const r = await cairn(["volume", "label", "big_vol", "env=prod", "tier=gold"]);
      ok(r);
      assert.deepEqual(json<VolumeJson>(r).labels, { env: "prod", tier: "gold" });
      const bad = await cairn(["volume", "label", "big_vol", "novalue"]);
      assert.equal(bad.code, 2);
      assert.equal(problem(bad).code, "INVALID_LABEL");
      const none = await cairn(["volume", "label", "big_vol"]);
      assert.equal(none.code, 2, "an empty label list must be asked for with --clear");
      const cleared = await cairn(["volume", "label", "big_vol", "--clear"]);
      ok(cleared);
      assert.deepEqual(json<VolumeJson>(cleared).labels, {});
    });

    it("delete, then get is exit 3", async () => {
      const d = await cairn(["volume", "delete", "team-data"]);
      ok(d);
      assert.equal(d.out, "");
      const g = await cairn(["volume", "get", "team-data"]);
      assert.equal(g.code, 3);
      assert.equal(problem(g).code, "VOLUME_NOT_FOUND");
      const list = json<VolumeJson[]>(await cairn(["volume", "list"]));
      assert.deepEqual(list.map((v) => v.name), ["big_vol"]);
    });
  });

  describe("errors and exit codes", () => {
    it("an invalid name is exit 2 with the naming rule", async () => {
      const r = await cairn(["volume", "create", "Team Data!"]);
      assert.equal(r.code, 2);
      const p = problem(r);
      assert.equal(p.code, "INVALID_VOLUME_NAME");
      assert.ok(p.detail.startsWith(NAME_MESSAGE), p.detail);
    });

    it("an unknown volume is exit 3", async () => {
      const r = await cairn(["volume", "get", "no-such-volume"]);
      assert.equal(r.code, 3);
      assert.equal(problem(r).code, "VOLUME_NOT_FOUND");
      assert.equal(r.out, "");
    });

    it("writing to an unknown volume is exit 3 and does not wait for stdin to end", async () => {
      const started = Date.now();
      const r = await cairn(["volume", "write", "no-such-volume", "/x"], { input: randomBytes(64 * 1024), keepStdinOpen: true });
      assert.equal(r.code, 3, r.stderr);
      assert.ok(Date.now() - started < 30_000, "exited on its own, not killed by the test's timer");
    });

    describe("a write that does not fit", () => {
      before(async () => ok(await cairn(["volume", "create", "tiny", "--size", "32MiB"])));
      after(async () => void (await cairn(["volume", "delete", "tiny"])));

      it("fails on its own while stdin is still open, and leaves nothing behind", async () => {
        const r = await cairn(["volume", "write", "tiny", "/big.bin"], { input: Buffer.alloc(48 * 1024 * 1024, 1), keepStdinOpen: true });
        assert.notEqual(r.code, null, "exited by itself, not killed by the test's timer");
        assert.notEqual(r.code, 0);
        const read = await cairn(["volume", "read", "tiny", "/big.bin"]);
        assert.equal(read.code, 3, "nothing was committed");
      });

      it(
        "is exit 6 (QUOTA_EXCEEDED)",
        // cairnd drains the rest of an upload it refuses, so the client reads the 507, not a reset.
        async () => {
          const r = await cairn(["volume", "write", "tiny", "/big.bin"], { input: Buffer.alloc(48 * 1024 * 1024, 1) });
          assert.equal(r.code, 6, r.stderr);
          assert.equal(problem(r).code, "QUOTA_EXCEEDED");
        },
      );
    });

    it("a wrong API key is exit 5; --api-key wins over CAIRN_API_KEY", async () => {
      const wrong = await cairn(["volume", "list"], { env: { CAIRN_API_KEY: "cairn_000000000000_wrongwrongwrongwrongwrongwrongwrongwrongwro" } });
      assert.equal(wrong.code, 5);
      assert.equal(problem(wrong).code, "UNAUTHORIZED");
      const flag = await cairn(["volume", "list", "--api-key", cairnd.adminKey], { env: { CAIRN_API_KEY: "wrong" } });
      ok(flag);
      const missing = await cairn(["volume", "list"], { env: { CAIRN_API_KEY: "" } });
      assert.equal(missing.code, 5);
    });

    it("an unknown project is exit 3 (PROJECT_NOT_FOUND)", async () => {
      const r = await cairn(["volume", "list", "--project", "no-such-project"]);
      assert.equal(r.code, 3);
      assert.equal(problem(r).code, "PROJECT_NOT_FOUND");
    });

    it("an unreachable cairnd is exit 7 with a hint naming the URL", async () => {
      const port = await closedPort();
      const url = `http://127.0.0.1:${port}`;
      const r = await cairn(["volume", "list", "--url", url]);
      assert.equal(r.code, 7);
      const p = problem(r) as { code: string; hint?: string };
      assert.equal(p.code, "UNAVAILABLE");
      assert.ok(p.hint?.includes(url), p.hint);
    });

    it("unknown options, commands and missing arguments are exit 2", async () => {
      for (const args of [["volume", "create", "x", "--bogus"], ["volume", "frob"], ["volume", "get"], ["volume", "create", "x", "--access-mode", "Sometimes"]]) {
        const r = await cairn(args);
        assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
        assert.equal(problem(r).code, "USAGE");
      }
    });

    it("--json makes errors JSON even where text would do, with code, detail, status, requestId", async () => {
      const r = await cairn(["volume", "get", "nope", "--json"]);
      assert.equal(r.code, 3);
      const p = problem(r);
      assert.deepEqual(Object.keys(p).slice(0, 4), ["code", "detail", "status", "requestId"]);
      assert.equal(p.status, 404);
    });
  });

  describe("paging", () => {
    it("list follows nextCursor through every page, asking the server for the chosen fields", async () => {
      const seen: URLSearchParams[] = [];
      // A stand-in cairnd with two pages of one volume each: cheaper than creating 101 volumes.
      const fake = createHttpServer((req, res) => {
        const url = new URL(req.url ?? "/", "http://x");
        seen.push(url.searchParams);
        const cursor = url.searchParams.get("cursor");
        const page = cursor === null ? { items: [{ name: "a" }], nextCursor: "page2" } : cursor === "page2" ? { items: [{ name: "b" }], nextCursor: null } : { items: [], nextCursor: null };
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(page));
      });
      await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
      try {
        const url = `http://127.0.0.1:${(fake.address() as { port: number }).port}`;
        const all = await cairn(["volume", "list", "--url", url, "--field", "name"]);
        ok(all);
        assert.deepEqual(json(all), [{ name: "a" }, { name: "b" }]);
        assert.equal(seen.length, 2);
        assert.equal(seen[0]?.get("fields"), "name", "fields are chosen server-side");
        assert.equal(seen[1]?.get("cursor"), "page2");

        seen.length = 0;
        const one = await cairn(["volume", "list", "--url", url, "--limit", "1"]);
        ok(one);
        assert.deepEqual(json(one), [{ name: "a" }]);
        assert.equal(seen.length, 1, "--limit fetches one page");
        assert.equal(seen[0]?.get("limit"), "1");
        assert.match(one.stderr, /--cursor page2/);
      } finally {
        await new Promise((resolve) => fake.close(resolve));
      }
    });
  });

  /** `script` gives the CLI a pseudo-terminal, as a person at a shell would have. */
  const haveScript = spawnSync("script", ["--version"]).status === 0;

  describe("on a terminal", { skip: haveScript ? false : "util-linux `script` not installed" }, () => {
    function tty(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
      const command = [process.execPath, CLI, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
      return new Promise((resolve, reject) => {
        const child = spawn("script", ["-qec", command, "/dev/null"], { env: cliEnv({ NO_COLOR: "1", ...env }), stdio: ["pipe", "pipe", "pipe"] });
        let out = "";
        child.stdout.on("data", (d: Buffer) => (out += d.toString()));
        const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
        child.on("error", reject);
        child.on("close", (code) => {
          clearTimeout(timer);
          resolve({ code, out: out.replaceAll("\r\n", "\n") });
        });
        child.stdin.end();
      });
    }

    before(async () => {
      ok(await cairn(["volume", "create", "tty-vol", "--size", "1GiB", "--label", "team=ml"]));
    });

    it("list is a table with the documented columns", async () => {
      const r = await tty(["volume", "list"]);
      assert.equal(r.code, 0, r.out);
      const [header, ...rows] = r.out.trim().split("\n");
      assert.match(header ?? "", /^NAME\s+SIZE\s+USED\s+FS\s+ACCESS MODE\s+STATUS\s+LABELS\s+CREATED$/);
      const row = rows.find((l) => l.startsWith("tty-vol"));
      assert.match(row ?? "", /^tty-vol\s+1 GiB\s+\S+ \S+\s+ext4\s+ReadWriteOnce\s+ready\s+team=ml\s+just now$/);
      assert.doesNotMatch(r.out, /\u001b\[/, "NO_COLOR: no escape codes");
    });

    it("list --field selects table columns", async () => {
      const r = await tty(["volume", "list", "--field", "name", "--field", "sizeBytes"]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /^NAME\s+SIZE\n/);
      assert.match(r.out, /^tty-vol\s+1 GiB$/m);
    });

    it("colour only when NO_COLOR is unset", async () => {
      const r = await tty(["volume", "list"], { NO_COLOR: "" });
      assert.match(r.out, /\u001b\[1mNAME/);
    });

    it("get shows one field per line", async () => {
      const r = await tty(["volume", "get", "tty-vol"]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /^NAME:\s+tty-vol$/m);
      assert.match(r.out, /^SIZE:\s+1 GiB \(1073741824 bytes\)$/m);
      assert.match(r.out, /^ACCESS MODE:\s+ReadWriteOnce$/m);
    });

    it("resize says what happened in words", async () => {
      const r = await tty(["volume", "resize", "tty-vol", "--size", "2GiB"]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /^Grew tty-vol from 1 GiB to 2 GiB \((online|offline): .+\)$/m);
      const same = await tty(["volume", "resize", "tty-vol", "--size", "2GiB"]);
      assert.match(same.out, /tty-vol is already 2 GiB; nothing to do/);
    });

    it("write and delete confirm on stderr in one line", async () => {
      const file = join(scratch, "tty.txt");
      await writeFile(file, "hello");
      const w = await tty(["volume", "write", "tty-vol", "/tty.txt", "--from", file]);
      assert.equal(w.code, 0, w.out);
      assert.equal(w.out, "✓ wrote 5 B to tty-vol:/tty.txt\n");
      ok(await cairn(["volume", "create", "tty-gone"]));
      const d = await tty(["volume", "delete", "tty-gone"]);
      assert.equal(d.code, 0, d.out);
      assert.equal(d.out, "✓ deleted volume tty-gone\n");
    });

    it("errors are text with a hint, and keep their exit code", async () => {
      const r = await tty(["volume", "get", "no-such-volume"]);
      assert.equal(r.code, 3);
      assert.match(r.out, /^error: Volume "no-such-volume" not found$/m);
      assert.match(r.out, /^hint: `cairn volume list` shows your volumes$/m);
      const shrink = await tty(["volume", "resize", "tty-vol", "--size", "1GiB"]);
      assert.equal(shrink.code, 4);
      assert.match(shrink.out, /^error: .*shrink/m);
      assert.match(shrink.out, /^hint: volumes only grow/m);
    });
  });
});

/** A port nothing listens on: bind one, then close it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
