/**
 * Archives both ways through the SDK against a real cairnd: tar / tar.gz / zip downloads that the
 * system tools read back byte for byte, uploads that extract all or nothing (also when the volume
 * fills up), and hostile archives that never reach outside the volume.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cairn, type Volume } from "@cairn/sdk";
import { withCairnd, type CairndProcess } from "./harness.js";
import { cairndMounts, rejectsWith, sha, sleep } from "./files-helpers.js";

const bytesOf = async (s: ReadableStream<Uint8Array>) => Buffer.from(await new Response(s).arrayBuffer());

describe("archives (SDK against a real cairnd)", () => {
  let c: CairndProcess;
  let cairn: Cairn;
  let v: Volume;
  let scratch: string;
  const big = randomBytes(3 * 1024 * 1024 + 7);

  // Registered first, so it runs before the fixture destroys cairnd (after hooks run in order).
  after(async () => {
    if (process.env.CAIRN_TEST_LOGS) console.error(c?.logs().split("\n").filter((l) => !l.includes('"level":30')).join("\n"));
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });
  const server = withCairnd({}, (s) => ({ c, cairn } = s));
  before(async () => {
    v = await cairn.volumes.create({ name: "arch" });
    scratch = await mkdtemp(join(tmpdir(), "cairn-archive-test-"));
    // A local tree with what tar keeps: modes, mtimes, symlinks, empty dirs, a big file.
    const src = join(scratch, "src");
    await mkdir(join(src, "bin"), { recursive: true });
    await mkdir(join(src, "empty"));
    await writeFile(join(src, "bin", "run.sh"), "#!/bin/sh\necho hi\n");
    await chmod(join(src, "bin", "run.sh"), 0o755);
    await writeFile(join(src, "big.bin"), big);
    await writeFile(join(src, "private.txt"), "secret");
    await chmod(join(src, "private.txt"), 0o600);
    await symlink("bin/run.sh", join(src, "link"));
    await utimes(join(src, "big.bin"), new Date("2020-01-02T03:04:05Z"), new Date("2020-01-02T03:04:05Z"));
  });

  it("uploads a tar that extracts into a new directory, keeping modes, mtimes and symlinks", async () => {
    const tar = execFileSync("tar", ["-c", "-C", join(scratch, "src"), "."], { maxBuffer: 1 << 30 });
    const r = await v.files.uploadArchive("/proj", tar);
    assert.deepEqual({ files: r.files, directories: r.directories, symlinks: r.symlinks, bytes: r.bytes }, { files: 3, directories: 2, symlinks: 1, bytes: big.length + 18 + 6 });
    assert.equal(sha(await v.files.readBytes("/proj/big.bin")), sha(big));
    assert.equal((await v.files.stat("/proj/bin/run.sh")).mode, 0o755);
    assert.equal((await v.files.stat("/proj/private.txt")).mode, 0o600);
    assert.equal((await v.files.stat("/proj/big.bin")).mtime, "2020-01-02T03:04:05.000Z");
    assert.equal((await v.files.stat("/proj/link")).target, "bin/run.sh");
    assert.equal((await v.files.stat("/proj/empty")).type, "directory");
  });

  it("downloads tar, tar.gz and zip that the system tools read back byte for byte", async () => {
    for (const format of ["tar", "tar.gz", "zip"] as const) {
      const out = join(scratch, `out-${format}`);
      await mkdir(out);
      const file = join(scratch, `proj.${format}`);
      await writeFile(file, await bytesOf(await v.files.downloadArchive("/proj", { format })));
      if (format === "zip") execFileSync("unzip", ["-q", file, "-d", out]);
      else execFileSync("tar", ["-x", ...(format === "tar.gz" ? ["-z"] : []), "-f", file, "-C", out]);
      assert.equal(sha(await readFile(join(out, "big.bin"))), sha(big), format);
      assert.equal(await readFile(join(out, "bin", "run.sh"), "utf8"), "#!/bin/sh\necho hi\n", format);
      assert.equal((await lstat(join(out, "bin", "run.sh"))).mode & 0o777, 0o755, format);
      assert.equal(await readlink(join(out, "link")), "bin/run.sh", `${format} stores symlinks as links`);
      // zip keeps DOS times (2 s steps) for Info-ZIP's unzip; tar keeps the second.
      const mtime = (await lstat(join(out, "big.bin"))).mtime.getTime();
      assert.ok(Math.abs(mtime - Date.parse("2020-01-02T03:04:05Z")) <= (format === "zip" ? 2000 : 0), `${format} mtime ${mtime}`);
    }
    // The whole volume: without /.cairn or lost+found.
    await v.files.upload("/proj/resumable.bin", new Uint8Array(5));
    const listing = execFileSync("tar", ["-t"], { maxBuffer: 1 << 30, input: await bytesOf(await v.files.downloadArchive("/")) }).toString();
    assert.match(listing, /\.\/proj\/big\.bin/);
    assert.doesNotMatch(listing, /\.cairn|lost\+found/);
    // One file gives an archive of that file.
    const one = execFileSync("tar", ["-t"], { maxBuffer: 1 << 30, input: await bytesOf(await v.files.downloadArchive("/proj/big.bin")) }).toString();
    assert.equal(one.trim(), "./big.bin");
    await rejectsWith(v.files.downloadArchive("/nope"), "PATH_NOT_FOUND");
  });

  it("merges an upload into an existing directory: files replaced, others kept", async () => {
    await v.files.write("/merge/keep.txt", "keep");
    await v.files.write("/merge/replace.txt", "old");
    const dir = join(scratch, "merge");
    await mkdir(join(dir, "sub"), { recursive: true });
    await writeFile(join(dir, "replace.txt"), "new");
    await writeFile(join(dir, "sub", "added.txt"), "added");
    const r = await v.files.uploadArchive("/merge", execFileSync("tar", ["-cz", "-C", dir, "."], { maxBuffer: 1 << 30 }), { format: "tar.gz" });
    assert.equal(r.files, 2);
    assert.equal(await v.files.readText("/merge/keep.txt"), "keep");
    assert.equal(await v.files.readText("/merge/replace.txt"), "new");
    assert.equal(await v.files.readText("/merge/sub/added.txt"), "added");
    // zip too
    const zdir = join(scratch, "zipsrc");
    await mkdir(join(zdir, "z"), { recursive: true });
    await writeFile(join(zdir, "z", "f.txt"), "from zip");
    execFileSync("zip", ["-q", "-r", join(scratch, "up.zip"), "."], { cwd: zdir });
    await v.files.uploadArchive("/merge", await readFile(join(scratch, "up.zip")), { format: "zip" });
    assert.equal(await v.files.readText("/merge/z/f.txt"), "from zip");
    // A file where the archive has a directory: refused before anything moves.
    await v.files.write("/conflict/sub", "i am a file");
    await rejectsWith(v.files.uploadArchive("/conflict", execFileSync("tar", ["-c", "-C", dir, "."], { maxBuffer: 1 << 30 })), "PATH_ALREADY_EXISTS");
    assert.equal(await v.files.exists("/conflict/replace.txt"), false, "nothing of a refused archive lands");
  });

  it("extracts all or nothing: a full volume or a broken archive changes nothing", async () => {
    const small = await cairn.volumes.create({ name: "arch-small", sizeBytes: 16 * 1024 * 1024 });
    await small.files.write("/keep.txt", "kept");
    const dir = join(scratch, "toobig");
    await mkdir(dir);
    for (let i = 0; i < 5; i++) await writeFile(join(dir, `f${i}.bin`), randomBytes(4 * 1024 * 1024));
    const before = (await small.refresh()).info.usedBytes;
    await rejectsWith(small.files.uploadArchive("/data", execFileSync("tar", ["-c", "-C", dir, "."], { maxBuffer: 1 << 30 })), "QUOTA_EXCEEDED");
    const names = (await small.files.list("/")).items.map((e) => e.name).filter((n) => n !== "lost+found");
    assert.deepEqual(names, ["keep.txt"], "nothing half-written");
    // The staged bytes are freed (ext4 reports freed blocks once its journal commits: a few
    // seconds on a busy machine, so this waits, within a generous bound).
    let after = (await small.refresh()).info.usedBytes;
    for (let i = 0; i < 120 && Math.abs(after - before) >= 1024 * 1024; i++) {
      await new Promise((r) => setTimeout(r, 500));
      after = (await small.refresh()).info.usedBytes;
    }
    assert.ok(Math.abs(after - before) < 1024 * 1024, `the staged bytes are freed (${before} before, ${after} after)`);
    const broken = execFileSync("tar", ["-c", "-C", dir, "."], { maxBuffer: 1 << 30 }).subarray(0, 6 * 1024 * 1024 + 100);
    await rejectsWith(small.files.uploadArchive("/data", broken), "INVALID_ARCHIVE");
    await rejectsWith(small.files.uploadArchive("/data", Buffer.from("not an archive at all")), "INVALID_ARCHIVE");
    assert.equal(await small.files.exists("/data"), false);
  });

  it("never writes outside the volume, drops device nodes and setuid bits", async () => {
    // Hostile tars, as an attacker would craft them (Python's tarfile writes whatever it is given).
    const canary = `/tmp/cairn-evil-${process.pid}`;
    const makeTar = (file: string, members: string) =>
      execFileSync("python3", [
        "-c",
        `
import tarfile, io, sys
t = tarfile.open(sys.argv[1], "w")
def add(name, data=b"x", **kw):
    i = tarfile.TarInfo(name)
    for k, val in kw.items(): setattr(i, k, val)
    i.size = len(data) if i.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    t.addfile(i, io.BytesIO(data) if i.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else None)
${members}
t.close()
`,
        file,
      ]);
    // 1. Through its own symlink: the mount is nosymfollow, so tar cannot follow it; all refused.
    const viaLink = join(scratch, "via-link.tar");
    makeTar(viaLink, `add("escape", type=tarfile.SYMTYPE, linkname="/tmp")\nadd("escape/cairn-evil-${process.pid}-via-link")\nadd("ok.txt", b"fine")`);
    await rejectsWith(v.files.uploadArchive("/evil1", await readFile(viaLink)), "INVALID_ARCHIVE");
    assert.equal(existsSync(`/tmp/cairn-evil-${process.pid}-via-link`), false);
    assert.equal(await v.files.exists("/evil1"), false, "nothing of a refused archive lands");
    // 2. A `..` member: tar refuses it, so the whole archive is refused.
    const dotdot = join(scratch, "dotdot.tar");
    makeTar(dotdot, `add("ok.txt", b"fine")\nadd("../../../../../..${canary}-dotdot")`);
    await rejectsWith(v.files.uploadArchive("/evil2", await readFile(dotdot)), "INVALID_ARCHIVE", /\.\./);
    assert.equal(existsSync(`${canary}-dotdot`), false);
    assert.equal(await v.files.exists("/evil2"), false);
    // 3. Absolute names, devices, fifos, setuid: extracted inside the volume, sanitised.
    const evil = join(scratch, "evil.tar");
    makeTar(
      evil,
      [
        `add("${canary}-abs")`,
        `add("dev-null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)`,
        `add("fifo", type=tarfile.FIFOTYPE)`,
        `add("suid", b"#!/bin/sh\\n", mode=0o4755)`,
        `add("ok.txt", b"fine")`,
      ].join("\n"),
    );
    const r = await v.files.uploadArchive("/evil", await readFile(evil));
    assert.equal(existsSync(`${canary}-abs`), false, "an absolute name never reaches the host");
    assert.deepEqual([...r.skipped].sort(), ["dev-null", "fifo"]);
    assert.equal(await v.files.readText("/evil/ok.txt"), "fine");
    assert.equal((await v.files.stat("/evil/suid")).mode, 0o755, "setuid bit cleared");
    assert.equal(await v.files.exists("/evil/dev-null"), false);
    assert.equal(await v.files.readText(`/evil${canary}-abs`), "x", "an absolute name lands inside the volume");
  });

  it("a download cut short leaves no archiver and no lease behind, and cairnd keeps running", async () => {
    for (const format of ["tar", "zip"] as const) {
      const stream = await v.files.downloadArchive("/proj", { format });
      const reader = stream.getReader();
      await reader.read();
      await reader.cancel();
    }
    // A plain file download cut short, too (this used to crash cairnd with ERR_HTTP_HEADERS_SENT).
    const file = (await v.files.read("/proj/big.bin")).getReader();
    await file.read();
    await file.cancel();
    await sleep(300);
    assert.equal((await cairn.health()).status, "ok");
    // The idle unmount (200 ms in tests) happens only once every lease is released.
    for (let i = 0; i < 100 && (await cairndMounts(c)).includes(v.id); i++) await sleep(100);
    assert.ok(!(await cairndMounts(c)).includes(v.id), "the volume is unmounted again");
    const ps = execFileSync("ps", ["-eo", "args"]).toString();
    assert.ok(!ps.split("\n").some((l) => l.startsWith("tar -c -f -") && l.includes("--one-file-system") && !l.includes("checkpoint")), "no tar left running");
    // A client that stopped reading answers does not hold up a graceful stop: cairnd closes such
    // connections after its 10 s grace (it took 70 s before the grace existed).
    const stopping = Date.now();
    await server.restart();
    assert.ok(Date.now() - stopping < 45_000, `stopped and started again in ${Date.now() - stopping} ms`);
  });
});
