/**
 * The file API through the real SDK against a real cairnd: stat, exists, list, mkdir, move,
 * remove, edit, batch write, search and replace. Each assertion is something a user relies on.
 */
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cairn, type Volume } from "@cairn/sdk";
import { withCairnd, type CairndProcess } from "./harness.js";
import { run } from "../src/host/exec.js";
import { auth, rejectsWith, sha, shellOnMount } from "./files-helpers.js";

describe("file API (SDK against a real cairnd)", () => {
  let c: CairndProcess;
  let cairn: Cairn;
  let v: Volume;

  withCairnd({}, (s) => ({ c, cairn } = s));
  before(async () => {
    v = await cairn.volumes.create({ name: "files" });
  });

  it("stat and exists describe files, directories and symlinks", async () => {
    const w = await v.files.write("/stat/a.txt", "hello");
    const st = await v.files.stat("/stat/a.txt");
    assert.equal(st.type, "file");
    assert.equal(st.size, 5);
    assert.equal(st.mode, 0o644);
    assert.equal(st.etag, w.etag, "stat's ETag is the one If-Match compares with");
    assert.ok(Math.abs(Date.parse(st.mtime) - Date.now()) < 60_000);
    const dir = await v.files.stat("/stat");
    assert.equal(dir.type, "directory");
    assert.equal(dir.etag, undefined);
    assert.equal(await v.files.exists("/stat/a.txt"), true);
    assert.equal(await v.files.exists("/stat/nope"), false);
    await rejectsWith(v.files.stat("/stat/nope"), "PATH_NOT_FOUND");
    // A symlink made inside the volume (as a sandbox would): stat describes the link, follow the target.
    const { lease } = await leaseHold();
    try {
      await shellOnMount(c, v.id, "ln -s a.txt $M/stat/link");
    } finally {
      lease();
    }
    const link = await v.files.stat("/stat/link");
    assert.equal(link.type, "symlink");
    assert.equal(link.target, "a.txt");
    assert.equal((await v.files.stat("/stat/link", { follow: true })).type, "file");
  });

  /** Keep the volume mounted (a watch holds a lease) while a test changes it from outside the API. */
  async function leaseHold(): Promise<{ lease: () => void }> {
    const ac = new AbortController();
    const it = v.files.watch("/", { signal: ac.signal });
    await it.next(); // ready: the watcher holds a lease
    return { lease: () => ac.abort() };
  }

  it("lists page by page in sorted order, recursively, with a prefix, and hides /.cairn", async () => {
    const names = Array.from({ length: 2500 }, (_, i) => `f${String(i).padStart(5, "0")}`);
    for (let i = 0; i < names.length; i += 500) {
      await v.files.writeMany(names.slice(i, i + 500).map((n) => ({ path: `/big/${n}`, content: n })));
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await v.files.list("/big", { limit: 700, ...(cursor ? { cursor } : {}) });
      assert.ok(page.items.length <= 700);
      seen.push(...page.items.map((e) => e.name));
      cursor = page.nextCursor ?? undefined;
      pages++;
    } while (cursor);
    assert.equal(pages, 4);
    assert.deepEqual(seen, names, "every entry exactly once, sorted");

    await v.files.writeMany([
      { path: "/tree/a/1.txt", content: "1" },
      { path: "/tree/a/b/2.txt", content: "2" },
      { path: "/tree/c.txt", content: "3" },
    ]);
    const all = [];
    for await (const e of v.files.iterate("/tree", { recursive: true, pageSize: 2 })) all.push(e.path);
    assert.deepEqual(all, ["/tree/a", "/tree/a/1.txt", "/tree/a/b", "/tree/a/b/2.txt", "/tree/c.txt"]);
    const flat = await v.files.list("/tree");
    assert.deepEqual(flat.items.map((e) => e.name), ["a", "c.txt"]);
    const pre = await v.files.list("/tree", { recursive: true, prefix: "a/b" });
    assert.deepEqual(pre.items.map((e) => e.path), ["/tree/a/b", "/tree/a/b/2.txt"]);

    // In-flight uploads live in /.cairn: never listed, never reachable.
    await v.files.upload("/tree/up.bin", new Uint8Array(10));
    const root = await v.files.list("/");
    assert.ok(!root.items.some((e) => e.name === ".cairn"), "/.cairn is hidden");
    assert.ok(!root.items.some((e) => e.name === "lost+found"), "ext4's lost+found is the filesystem's, not listed");
    await rejectsWith(v.files.list("/.cairn"), "INVALID_PATH", /reserved/);
    await rejectsWith(v.files.write("/.cairn/x", "x"), "INVALID_PATH");
    await rejectsWith(v.files.list("/tree/c.txt"), "NOT_A_DIRECTORY");
    await rejectsWith(v.files.list("/", { cursor: "garbage" }), "INVALID_REQUEST", /cursor/);
  });

  it("keeps a write in progress out of sight, and sweeps what a crash left of one", async () => {
    const w = await cairn.volumes.create({ name: "temps" });
    await w.files.mkdir("/d"); // mounted now
    // What a crash two hours ago left behind, and a younger one that may still be in use.
    const old = (Date.now() - 2 * 3600_000).toString(36);
    const young = Date.now().toString(36);
    await shellOnMount(c, w.id, `mkdir -p $M/.cairn/tmp && echo x > $M/.cairn/tmp/${old}-dead && echo y > $M/.cairn/tmp/${young}-live`);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const writing = w.files.write(
      "/d/slow.txt",
      (async function* () {
        yield new TextEncoder().encode("first half, ");
        await gate;
        yield new TextEncoder().encode("second half");
      })(),
    );
    await new Promise((r) => setTimeout(r, 300));
    // While the body is still arriving: nothing in the directory, through the API or on the mount.
    assert.deepEqual((await w.files.list("/d")).items.map((e) => e.name), []);
    assert.equal((await shellOnMount(c, w.id, "ls -A $M/d")).trim(), "");
    release();
    await writing;
    assert.equal(await w.files.readText("/d/slow.txt"), "first half, second half");
    assert.equal((await shellOnMount(c, w.id, "ls -A $M/d")).trim(), "slow.txt");
    // The old leftover is swept, the young one kept.
    for (let i = 0; i < 50 && (await shellOnMount(c, w.id, "ls $M/.cairn/tmp")).includes("dead"); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal((await shellOnMount(c, w.id, "ls $M/.cairn/tmp")).trim(), `${young}-live`);
  });

  it("downloads a file to the local disk whole, replacing what is there, never leaving a partial file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-download-"));
    try {
      // Crosses 4 MiB blocks and ends mid-block: direct writes and the buffered tail both count.
      const data = randomBytes(9 * 1024 * 1024 + 12345);
      await v.files.write("/dl/big.bin", data);
      const local = join(dir, "big.bin");
      await writeFile(local, "old content");
      const seen: number[] = [];
      const r = await v.files.download("/dl/big.bin", local, { onProgress: (n) => seen.push(n) });
      assert.equal(r.bytes, data.length);
      assert.equal(seen.at(-1), data.length);
      assert.ok((await readFile(local)).equals(data), "byte for byte");
      await v.files.write("/dl/empty", "");
      await v.files.download("/dl/empty", join(dir, "empty"));
      assert.equal((await readFile(join(dir, "empty"))).length, 0);
      await rejectsWith(v.files.download("/dl/missing", join(dir, "missing")), "PATH_NOT_FOUND");
      assert.deepEqual((await readdir(dir)).sort(), ["big.bin", "empty"], "no partial file left behind");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("runs cairnd with malloc settings that keep its heap (no fresh pages per socket read)", async () => {
    // glibc may parse GLIBC_TUNABLES in place (a NUL where each ":" was): look at the raw block.
    const env = await readFile(`/proc/${c.serverPid}/environ`, "utf8");
    assert.match(env, /GLIBC_TUNABLES=glibc\.malloc\.trim_threshold=134217728[:\0]glibc\.malloc\.mmap_threshold=33554432\0/);
  });

  it("runs cairnd with array buffers swept in the scavenge (no mark-compact storms while bodies stream)", async () => {
    const argv = (await readFile(`/proc/${c.serverPid}/cmdline`, "utf8")).split("\0");
    assert.ok(argv.includes("--no-concurrent-array-buffer-sweeping"), argv.join(" "));
  });

  it("serves large files and unaligned ranges of them byte for byte, cached or not (O_DIRECT)", async () => {
    const data = randomBytes(9 * 1024 * 1024 + 333);
    await v.files.write("/direct/big.bin", data);
    const url = `${c.url}/v1/volumes/${v.id}/files/content?path=${encodeURIComponent("/direct/big.bin")}`;
    const { lease } = await leaseHold();
    try {
      // Twice: with the file's pages dropped (cairnd reads them with O_DIRECT), then cached.
      for (const cache of ["dropped", "cached"]) {
        if (cache === "dropped") await shellOnMount(c, v.id, "dd if=$M/direct/big.bin iflag=nocache count=0 status=none");
        const whole = await fetch(url, { headers: auth(c) });
        assert.equal(whole.status, 200);
        assert.equal(whole.headers.get("content-length"), String(data.length));
        assert.match(whole.headers.get("x-request-id") ?? "", /^req_/);
        assert.equal(sha(new Uint8Array(await whole.arrayBuffer())), sha(data), cache);
        // Ranges that start and end off any block boundary, span buffers, or sit in the tail.
        for (const [start, end] of [[4097, 6_000_000], [1, 4 * 1024 * 1024 + 1], [data.length - 10, data.length - 1], [8 * 1024 * 1024 - 3, 8 * 1024 * 1024 + 2]] as const) {
          if (cache === "dropped") await shellOnMount(c, v.id, "dd if=$M/direct/big.bin iflag=nocache count=0 status=none");
          const res = await fetch(url, { headers: auth(c, { range: `bytes=${start}-${end}` }) });
          assert.equal(res.status, 206);
          assert.equal(res.headers.get("content-range"), `bytes ${start}-${end}/${data.length}`);
          assert.ok(Buffer.from(await res.arrayBuffer()).equals(data.subarray(start, end + 1)), `range ${start}-${end}, ${cache}`);
        }
      }
      // What was just written through the mount (a sandbox's write, still in the page cache) is
      // what a read returns.
      await shellOnMount(c, v.id, "printf 'CHANGED' | dd of=$M/direct/big.bin bs=1 seek=5000000 conv=notrunc status=none");
    } finally {
      lease();
    }
    const changed = Buffer.from(data);
    changed.write("CHANGED", 5_000_000);
    const again = await fetch(url, { headers: auth(c, { range: "bytes=4999000-5001000" }) });
    assert.ok(Buffer.from(await again.arrayBuffer()).equals(changed.subarray(4_999_000, 5_001_001)));
  });

  it("downloads the same bytes through fetch (a custom fetch) as through the bulk path, and an abort leaves nothing", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-download-"));
    try {
      const data = randomBytes(5 * 1024 * 1024 + 99);
      await v.files.write("/dl/fetch.bin", data);
      let viaFetch = 0;
      const counting = new Cairn({ url: c.url, apiKey: c.adminKey, fetch: (input, init) => (viaFetch++, fetch(input, init)) });
      const w = await counting.volumes.get(v.id);
      viaFetch = 0;
      await w.files.download("/dl/fetch.bin", join(dir, "f.bin"));
      assert.equal(viaFetch, 1, "a custom fetch carries the download");
      assert.ok((await readFile(join(dir, "f.bin"))).equals(data));
      // Abort part way: the call rejects and no partial file stays.
      const ac = new AbortController();
      await assert.rejects(v.files.download("/dl/fetch.bin", join(dir, "aborted.bin"), { signal: ac.signal, onProgress: (n) => n > 1024 * 1024 && ac.abort(new Error("enough")) }), /enough/);
      assert.deepEqual(await readdir(dir), ["f.bin"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("writeFromFile sends a local file byte for byte, with progress, preconditions and the quota", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-upload-"));
    const small = await cairn.volumes.create({ name: "from-file", sizeGb: 1 });
    try {
      const data = randomBytes(13 * 1024 * 1024 + 5); // several of the reader's 4 MiB buffers, and a tail
      const local = join(dir, "src.bin");
      await writeFile(local, data);
      const seen: Array<[number, number]> = [];
      const r = await small.files.writeFromFile("/up/src.bin", local, { onProgress: (n, total) => seen.push([n, total]) });
      assert.equal(r.size, data.length);
      assert.deepEqual(seen.at(-1), [data.length, data.length]);
      assert.equal(sha(await small.files.readBytes("/up/src.bin")), sha(data), "byte for byte");
      assert.equal((await small.files.stat("/up/src.bin")).etag, r.etag);
      // Compare-and-swap: a stale ETag is refused and the content stays.
      await rejectsWith(small.files.writeFromFile("/up/src.bin", local, { ifMatch: '"stale"' }), "PRECONDITION_FAILED");
      await rejectsWith(small.files.writeFromFile("/up/src.bin", local, { ifNoneMatch: "*" }), "PRECONDITION_FAILED");
      const again = await small.files.writeFromFile("/up/src.bin", local, { ifMatch: r.etag });
      assert.equal(again.size, data.length, "the current ETag is accepted");
      // Empty file.
      await writeFile(join(dir, "empty"), "");
      assert.equal((await small.files.writeFromFile("/up/empty", join(dir, "empty"))).size, 0);
      assert.equal((await small.files.readBytes("/up/empty")).length, 0);
      // A file larger than the volume: 507, and the old content is intact.
      const huge = join(dir, "huge.bin");
      const fh = await open(huge, "w");
      await fh.truncate(1200 * 1024 * 1024); // sparse: costs the host nothing
      await fh.close();
      await rejectsWith(small.files.writeFromFile("/up/src.bin", huge), "QUOTA_EXCEEDED");
      assert.equal(sha(await small.files.readBytes("/up/src.bin")), sha(data), "the old content is intact");
      // Through a custom fetch (the fallback path) the same bytes arrive.
      const viaFetch = await new Cairn({ url: c.url, apiKey: c.adminKey, fetch: (i, init) => fetch(i, init) }).volumes.get(small.id);
      await viaFetch.files.writeFromFile("/up/fetched.bin", local);
      assert.equal(sha(await small.files.readBytes("/up/fetched.bin")), sha(data));
      // A local path that does not exist: the local error, nothing written.
      await assert.rejects(small.files.writeFromFile("/up/none", join(dir, "missing")), { code: "ENOENT" });
      assert.equal(await small.files.exists("/up/none"), false);
    } finally {
      await small.delete();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("mkdir -p creates what is missing, accepts what exists, refuses a file in the way", async () => {
    const r = await v.files.mkdir("/mk/a/b/c", { mode: 0o750 });
    assert.equal(r.created, true);
    assert.equal(r.type, "directory");
    assert.equal(r.mode, 0o750);
    assert.equal((await v.files.mkdir("/mk/a/b/c")).created, false);
    await v.files.write("/mk/file", "x");
    await rejectsWith(v.files.mkdir("/mk/file"), "PATH_ALREADY_EXISTS");
    await rejectsWith(v.files.mkdir("/mk/file/sub"), "PATH_NOT_FOUND", /not a directory/);
  });

  it("moves and renames files and directories, refusing to overwrite unless asked", async () => {
    await v.files.write("/mv/a.txt", "A");
    await v.files.write("/mv/b.txt", "B");
    const moved = await v.files.move("/mv/a.txt", "/mv/sub/deeper/a2.txt");
    assert.equal(moved.path, "/mv/sub/deeper/a2.txt");
    assert.equal(await v.files.exists("/mv/a.txt"), false);
    assert.equal(await v.files.readText("/mv/sub/deeper/a2.txt"), "A");
    await rejectsWith(v.files.move("/mv/b.txt", "/mv/sub/deeper/a2.txt"), "PATH_ALREADY_EXISTS", /overwrite/);
    assert.equal(await v.files.readText("/mv/b.txt"), "B", "a refused move changes nothing");
    await v.files.move("/mv/b.txt", "/mv/sub/deeper/a2.txt", { overwrite: true });
    assert.equal(await v.files.readText("/mv/sub/deeper/a2.txt"), "B");
    // Directories move whole.
    await v.files.move("/mv/sub", "/mv/renamed");
    assert.equal(await v.files.readText("/mv/renamed/deeper/a2.txt"), "B");
    await v.files.mkdir("/mv/target/nonempty");
    await rejectsWith(v.files.move("/mv/renamed", "/mv/target", { overwrite: true }), "DIRECTORY_NOT_EMPTY");
    await rejectsWith(v.files.move("/mv/renamed", "/mv/target"), "PATH_ALREADY_EXISTS");
    await rejectsWith(v.files.move("/mv/renamed", "/mv/renamed/deeper/x"), "INVALID_PATH", /into itself/);
    await rejectsWith(v.files.move("/mv/missing", "/mv/x"), "PATH_NOT_FOUND");
    await rejectsWith(v.files.move("/", "/x"), "INVALID_PATH");
  });

  it("removes files, empty and (recursively) full directories", async () => {
    const w = await v.files.write("/rm/f.txt", "x");
    await v.files.write("/rm/dir/a/b.txt", "y");
    await v.files.mkdir("/rm/empty");
    await rejectsWith(v.files.remove("/rm/f.txt", { ifMatch: '"stale"' }), "PRECONDITION_FAILED");
    await v.files.remove("/rm/f.txt", { ifMatch: w.etag });
    assert.equal(await v.files.exists("/rm/f.txt"), false);
    await v.files.remove("/rm/empty");
    await rejectsWith(v.files.remove("/rm/dir"), "DIRECTORY_NOT_EMPTY", /recursive/);
    assert.equal(await v.files.readText("/rm/dir/a/b.txt"), "y", "a refused remove removes nothing");
    await v.files.remove("/rm/dir", { recursive: true });
    assert.equal(await v.files.exists("/rm/dir"), false);
    await rejectsWith(v.files.remove("/rm/dir"), "PATH_NOT_FOUND");
    await rejectsWith(v.files.remove("/", { recursive: true }), "INVALID_PATH", /root/);
  });

  it("edits one exact occurrence, refuses absent or ambiguous strings, and keeps the file's mode", async () => {
    await v.files.writeMany([{ path: "/ed/app.toml", content: "port = 8080\nhost = a\nhost = a\n", mode: 0o600 }]);
    const r = await v.files.edit("/ed/app.toml", "port = 8080", "port = 9090");
    assert.equal(r.replacements, 1);
    assert.equal(await v.files.readText("/ed/app.toml"), "port = 9090\nhost = a\nhost = a\n");
    assert.equal((await v.files.stat("/ed/app.toml")).mode, 0o600, "an edit keeps the mode");
    await rejectsWith(v.files.edit("/ed/app.toml", "port = 1", "x"), "EDIT_NO_MATCH");
    const amb = await rejectsWith(v.files.edit("/ed/app.toml", "host = a", "host = b"), "EDIT_AMBIGUOUS", /2 times/);
    assert.equal(amb.meta?.matches, 2);
    assert.equal(amb.status, 409);
    const all = await v.files.edit("/ed/app.toml", "host = a", "host = b", { replaceAll: true });
    assert.equal(all.replacements, 2);
    assert.equal(await v.files.readText("/ed/app.toml"), "port = 9090\nhost = b\nhost = b\n");
    await rejectsWith(v.files.edit("/ed/app.toml", "port", "p", { ifMatch: r.etag }), "PRECONDITION_FAILED");
    await rejectsWith(v.files.edit("/ed", "a", "b"), "NOT_A_FILE");
    await rejectsWith(v.files.edit("/ed/none", "a", "b"), "PATH_NOT_FOUND");
  });

  it("batch-writes all or nothing", async () => {
    const bin = randomBytes(1000);
    const r = await v.files.writeMany([
      { path: "/batch/a.txt", content: "A" },
      { path: "/batch/bin/blob", content: bin },
      { path: "/batch/run.sh", content: "#!/bin/sh\n", mode: 0o755 },
    ]);
    assert.deepEqual(r.files.map((f) => [f.path, f.created]), [["/batch/a.txt", true], ["/batch/bin/blob", true], ["/batch/run.sh", true]]);
    assert.equal(sha(await v.files.readBytes("/batch/bin/blob")), sha(bin));
    assert.equal((await v.files.stat("/batch/run.sh")).mode, 0o755);
    // setuid/setgid never survive a batch, as they never survive an archive: a sandbox must not find a privileged program cairnd made.
    await v.files.writeMany([{ path: "/batch/suid", content: "#!/bin/sh\n", mode: 0o6755 }, { path: "/batch/sticky", content: "x", mode: 0o1700 }]);
    assert.equal((await v.files.stat("/batch/suid")).mode, 0o755);
    assert.equal((await v.files.stat("/batch/sticky")).mode, 0o1700);
    await v.files.writeMany([{ path: "/batch/suid", content: "again", mode: 0o4711 }]);
    assert.equal((await v.files.stat("/batch/suid")).mode, 0o711);
    // One failing precondition: nothing of the batch lands, not even the files before it.
    await rejectsWith(
      v.files.writeMany([
        { path: "/batch/a.txt", content: "changed" },
        { path: "/batch/new.txt", content: "new" },
        { path: "/batch/run.sh", content: "x", ifNoneMatch: "*" },
      ]),
      "PRECONDITION_FAILED",
    );
    assert.equal(await v.files.readText("/batch/a.txt"), "A");
    assert.equal(await v.files.exists("/batch/new.txt"), false);
    // A type conflict found while committing is refused before anything moves.
    await rejectsWith(v.files.writeMany([{ path: "/batch/x.txt", content: "x" }, { path: "/batch/bin", content: "x" }]), "NOT_A_FILE");
    assert.equal(await v.files.exists("/batch/x.txt"), false);
    await rejectsWith(v.files.writeMany([{ path: "/d/1", content: "1" }, { path: "/d//1", content: "2" }]), "INVALID_REQUEST", /twice/);
    // A file and a path below it in one batch: a 400 that says why (it was an empty reply), nothing written.
    await rejectsWith(v.files.writeMany([{ path: "/f", content: "1" }, { path: "/f/child", content: "2" }]), "INVALID_REQUEST", /needs \/f to be a directory/);
    await rejectsWith(v.files.writeMany([{ path: "/g/h/child", content: "2" }, { path: "/g", content: "1" }]), "INVALID_REQUEST", /needs \/g to be a directory/);
    assert.equal(await v.files.exists("/f"), false);
    // Below an existing file: a status and a code, not a dropped connection.
    await v.files.write("/plain.txt", "p");
    const below = await fetch(`${c.url}/v1/volumes/${v.id}/files/batch`, {
      method: "POST",
      headers: auth(c, { "content-type": "application/json" }),
      body: JSON.stringify({ files: [{ path: "/plain.txt/x", content: "x" }] }),
    });
    assert.ok(below.status >= 400 && below.status < 500, `status ${below.status}`);
    assert.match(((await below.json()) as { code: string }).code, /^[A-Z_]+$/);
    // Too big for the volume: 507 and nothing written.
    const small = await cairn.volumes.create({ name: "batch-small", sizeBytes: 16 * 1024 * 1024 });
    await small.files.write("/keep.txt", "kept");
    const chunk = randomBytes(6 * 1024 * 1024).toString("base64");
    const res = await fetch(`${c.url}/v1/volumes/${small.id}/files/batch`, {
      method: "POST",
      headers: auth(c, { "content-type": "application/json" }),
      body: JSON.stringify({ files: [0, 1, 2].map((i) => ({ path: `/big${i}.bin`, contentBase64: chunk })) }),
    });
    assert.equal(res.status, 507);
    assert.equal(((await res.json()) as { code: string }).code, "QUOTA_EXCEEDED");
    assert.deepEqual((await small.files.list("/")).items.map((e) => e.name).filter((n) => n !== "lost+found"), ["keep.txt"]);
  });

  it("searches names by glob and contents by literal or regex, with line numbers and limits", async () => {
    await v.files.writeMany([
      { path: "/src/main.ts", content: "import x\n// TODO: one\nconst a = 1;\n" },
      { path: "/src/lib/util.ts", content: "export const todo = 2; // todo two\n" },
      { path: "/src/lib/readme.md", content: "TODO in markdown\n" },
      { path: "/src/bin.dat", content: Buffer.from([0, 1, 2, 84, 79, 68, 79, 0]) },
    ]);
    const names = await v.files.search({ path: "/src", glob: "*.ts" });
    assert.deepEqual(names.matches.map((m) => m.path).sort(), ["/src/lib/util.ts", "/src/main.ts"]);
    assert.ok(names.matches.every((m) => m.type === "file"));
    const deep = await v.files.search({ path: "/src", glob: "lib/**" });
    assert.deepEqual(deep.matches.map((m) => m.path).sort(), ["/src/lib/readme.md", "/src/lib/util.ts"]);
    const braces = await v.files.search({ path: "/src", glob: "*.{md,dat}" });
    assert.equal(braces.matches.length, 2);

    const lit = await v.files.search({ path: "/src", query: "TODO" });
    assert.deepEqual(
      lit.matches.map((m) => [m.path, m.line, m.text]).sort(),
      [
        ["/src/lib/readme.md", 1, "TODO in markdown"],
        ["/src/main.ts", 2, "// TODO: one"],
      ],
      "binary files are skipped",
    );
    const ci = await v.files.search({ path: "/src", query: "todo", ignoreCase: true, glob: "*.ts" });
    assert.equal(ci.matches.length, 2);
    const re = await v.files.search({ path: "/src", query: "const \\w+ = \\d", regex: true });
    assert.deepEqual(re.matches.map((m) => `${m.path}:${m.line}`).sort(), ["/src/lib/util.ts:1", "/src/main.ts:3"]);
    const limited = await v.files.search({ path: "/src", query: "o", limit: 1 });
    assert.equal(limited.matches.length, 1);
    assert.equal(limited.truncated, true);
    await rejectsWith(v.files.search({ path: "/src", query: "(unclosed", regex: true }), "INVALID_PATTERN");
    await rejectsWith(v.files.search({ path: "/src" }), "INVALID_REQUEST", /glob.*query/);
    await rejectsWith(v.files.search({ path: "/src", glob: "[a" }), "INVALID_PATTERN");
  });

  it("replaces across files, with a dry run that changes nothing", async () => {
    await v.files.writeMany([
      { path: "/rep/a.md", content: "Cairn v1 is here.\nUse Cairn v1.\n" },
      { path: "/rep/b.md", content: "nothing\n" },
      { path: "/rep/c.txt", content: "Cairn v1\n" },
    ]);
    const before = await v.files.stat("/rep/a.md");
    const dry = await v.files.replace({ path: "/rep", glob: "*.md", search: "Cairn v1", replacement: "Cairn v2", dryRun: true });
    assert.equal(dry.dryRun, true);
    assert.equal(dry.filesChanged, 1);
    assert.equal(dry.replacements, 2);
    assert.deepEqual(dry.files[0]!.changes, [
      { line: 1, before: "Cairn v1 is here.", after: "Cairn v2 is here." },
      { line: 2, before: "Use Cairn v1.", after: "Use Cairn v2." },
    ]);
    assert.equal((await v.files.stat("/rep/a.md")).etag, before.etag, "a dry run changes nothing");
    const done = await v.files.replace({ path: "/rep", glob: "*.md", search: "Cairn v1", replacement: "Cairn v2" });
    assert.equal(done.filesChanged, 1);
    assert.equal(await v.files.readText("/rep/a.md"), "Cairn v2 is here.\nUse Cairn v2.\n");
    assert.equal(await v.files.readText("/rep/c.txt"), "Cairn v1\n", "the glob limits the files");
    const re = await v.files.replace({ path: "/rep", search: "Cairn v(\\d)", replacement: "Cairn version $1", regex: true });
    assert.equal(re.filesChanged, 2);
    assert.equal(await v.files.readText("/rep/c.txt"), "Cairn version 1\n");
    // All or nothing: too many files to change is refused before anything changes.
    await rejectsWith(v.files.replace({ path: "/rep", search: "Cairn", replacement: "X", maxFiles: 1 }), "INVALID_REQUEST", /maxFiles/);
    assert.equal(await v.files.readText("/rep/c.txt"), "Cairn version 1\n");
    // A catastrophic regex is stopped, not left to hang cairnd.
    await v.files.write("/rep/redos.txt", "a".repeat(40) + "!");
    const started = Date.now();
    await rejectsWith(v.files.replace({ path: "/rep/redos.txt", search: "(a+)+$", replacement: "x", regex: true }), "INVALID_PATTERN", /longer than/);
    assert.ok(Date.now() - started < 30_000);
    assert.equal((await cairn.health()).status, "ok", "cairnd still answers");
  });

  it("answers a refused upload with its error, never a connection reset", async () => {
    const tiny = await cairn.volumes.create({ name: "tiny", sizeBytes: 16 * 1024 * 1024 });
    const big = Buffer.alloc(48 * 1024 * 1024, 1);
    async function* stream() {
      for (let i = 0; i < 48; i++) yield big.subarray(i * 1024 * 1024, (i + 1) * 1024 * 1024);
    }
    for (let i = 0; i < 4; i++) {
      // Known length: refused before a byte lands. Unknown length: the volume fills up mid-way.
      await rejectsWith(tiny.files.write("/big.bin", big), "QUOTA_EXCEEDED");
      await rejectsWith(tiny.files.write("/big.bin", stream()), "QUOTA_EXCEEDED");
    }
    const w = await tiny.files.write("/small.txt", "one");
    await rejectsWith(tiny.files.write("/small.txt", Buffer.alloc(8 * 1024 * 1024), { ifMatch: '"other"' }), "PRECONDITION_FAILED");
    assert.equal((await tiny.files.stat("/small.txt")).etag, w.etag);
    assert.equal(await tiny.files.exists("/big.bin"), false, "no half-written file");
  });

  it("writes a stream of unknown length as it comes; a stream that fails or is refused leaves the old file", async () => {
    const data = randomBytes(9 * 1024 * 1024 + 17);
    // Uneven pieces, as a pipe gives them (sent chunked, straight to the socket).
    async function* pieces(fail = false) {
      for (let at = 0, i = 0; at < data.length; i++) {
        const n = Math.min(data.length - at, [1, 65536, 3 * 1024 * 1024, 777][i % 4]!);
        yield data.subarray(at, at + n);
        at += n;
        if (fail && at > 4 * 1024 * 1024) throw new Error("the source broke");
      }
    }
    const w = await v.files.write("/streams/a.bin", pieces());
    assert.equal(w.size, data.length);
    assert.equal(sha(await v.files.readBytes("/streams/a.bin")), sha(data));
    // A source that fails part way: the write fails with its error, nothing of it lands.
    await assert.rejects(v.files.write("/streams/a.bin", pieces(true)), /the source broke/);
    assert.equal((await v.files.stat("/streams/a.bin")).etag, w.etag, "the old content stays");
    // Refused before the body (If-None-Match: * on an existing file): the stream is released unread.
    const { Readable } = await import("node:stream");
    const source = Readable.from(pieces(), { objectMode: false });
    await rejectsWith(v.files.write("/streams/a.bin", source, { ifNoneMatch: "*" }), "PRECONDITION_FAILED");
    assert.equal(source.destroyed, true, "the refused stream was closed, not left open");
    assert.equal((await v.files.stat("/streams/a.bin")).etag, w.etag);
    assert.deepEqual((await v.files.list("/streams")).items.map((e) => e.name), ["a.bin"], "no leftover");
  });

  it("asks for a body (100 Continue) only once it reads it: a refused write costs the client no upload", async () => {
    const tiny = await cairn.volumes.create({ name: "expect", sizeBytes: 16 * 1024 * 1024 });
    const dir = await mkdtemp(join(tmpdir(), "cairn-expect-"));
    try {
      const big = join(dir, "big.bin");
      await writeFile(big, Buffer.alloc(40 * 1024 * 1024, 7));
      const ok = join(dir, "ok.bin");
      const data = randomBytes(3 * 1024 * 1024);
      await writeFile(ok, data);
      const url = (p: string) => `${c.url}/v1/volumes/${tiny.id}/files/content?path=${encodeURIComponent(p)}`;
      // curl sends "Expect: 100-continue" with a body this large; -w reports what it sent.
      const curl = async (file: string, path: string) => {
        const { stdout } = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_upload}", "-T", file, "-H", `authorization: Bearer ${c.adminKey}`, "-H", "content-type: application/octet-stream", "--expect100-timeout", "30", url(path)]);
        const [code, sent] = stdout.trim().split(" ").map(Number);
        return { code, sent };
      };
      const refused = await curl(big, "/big.bin");
      assert.equal(refused.code, 507);
      assert.equal(refused.sent, 0, "not a byte of the refused body was sent");
      const w = await tiny.files.write("/cas.txt", "v1");
      await tiny.files.write("/cas.txt", "v2"); // w.etag is now stale
      const { stdout } = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_upload}", "-T", ok, "-H", `authorization: Bearer ${c.adminKey}`, "-H", `if-match: ${w.etag}`, "--expect100-timeout", "30", url("/cas.txt")]);
      assert.equal(stdout.trim(), "412 0");
      // An accepted write gets its "100 Continue" and the whole body (no 30 s wait for it).
      const t0 = Date.now();
      const accepted = await curl(ok, "/ok.bin");
      assert.equal(accepted.code, 201);
      assert.equal(accepted.sent, data.length);
      assert.ok(Date.now() - t0 < 25_000, "no 30 s wait for 100 Continue");
      assert.equal(sha(await tiny.files.readBytes("/ok.bin")), sha(data));
      // A JSON body with Expect (its parser reads it): answered normally.
      const mk = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", `authorization: Bearer ${c.adminKey}`, "-H", "content-type: application/json", "-H", "expect: 100-continue", "--expect100-timeout", "30", "-d", JSON.stringify({ path: "/made" }), `${c.url}/v1/volumes/${tiny.id}/files/mkdir`]);
      assert.equal(mk.stdout.trim(), "201");
      assert.equal((await tiny.files.stat("/made")).type, "directory");
    } finally {
      await tiny.delete();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("keeps the owner and mode of a file it replaces", async () => {
    const { lease } = await leaseHold();
    try {
      await shellOnMount(c, v.id, "mkdir -p $M/own && echo old > $M/own/f && chown 1000:1000 $M/own/f && chmod 0640 $M/own/f");
      await v.files.write("/own/f", "new");
      const out = await shellOnMount(c, v.id, "stat -c '%u:%g %a' $M/own/f");
      assert.equal(out.trim(), "1000:1000 640");
    } finally {
      lease();
    }
  });
});
