/**
 * What a faster hot path must keep, against a real cairnd: a revoked API key is refused within a
 * second (whatever a faster auth remembers), a listing cursor stays valid while entries come and
 * go between pages, leases balance after a burst of concurrent requests (the volume unmounts
 * when idle and can be deleted), and search agrees with `find` and `grep` on the same tree.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cairn, type Volume } from "@cairn/sdk";
import { MiB } from "@cairn/protocol";
import { startCairnd, withCairnd, type CairndProcess } from "./harness.js";
import { cairndMounts, mountPathOf, sleep } from "./files-helpers.js";
import { startPostgres, type Postgres } from "./postgres.js";

/** A small deterministic random source, so a failure can be replayed. */
function rng(seed: number) {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return { next, pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]! };
}

/** A tool run in cairnd's mount namespace (where volumes are mounted), in a UTF-8 locale; stdout as bytes. */
function inNamespace(c: CairndProcess, args: string[], okCodes = [0]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(
      "nsenter",
      [`--mount=${c.dataDir}/run/mnt.ns`, "--", ...args],
      { encoding: "buffer", maxBuffer: 64 * MiB, env: { ...process.env, LC_ALL: "C.UTF-8" } },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1) : 0;
        if (okCodes.includes(code)) resolve(stdout);
        else reject(new Error(`${args.join(" ")} failed (${code}): ${stderr}`));
      },
    );
  });
}

const nulSplit = (b: Buffer) => b.toString("utf8").split("\0").filter((s) => s !== "");

/**
 * Hold a lease on a volume the way a slow client does: a 64 MiB read whose body nobody reads.
 * cairnd keeps the volume leased until the response closes (`release()` cancels it).
 */
async function holdLease(c: CairndProcess, key: string, v: Volume): Promise<{ release(): Promise<void> }> {
  if (!(await v.files.exists("/.hold.bin"))) await v.files.write("/.hold.bin", new Uint8Array(64 * MiB));
  const res = await fetch(`${c.url}/v1/volumes/${v.id}/files/content?path=%2F.hold.bin`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(res.status, 200);
  return { release: () => res.body!.cancel() };
}

async function isMounted(c: CairndProcess, v: Volume): Promise<boolean> {
  return (await cairndMounts(c)).split("\n").includes(mountPathOf(c, v.id));
}

// ------------------------------------------------------------------------------------ revocation

const backends = (process.env.CAIRN_TEST_BACKENDS ?? "sqlite,postgres").split(",");

for (const backend of backends) describe(`a revoked API key on ${backend}`, () => {
  let c: CairndProcess;
  let admin: Cairn;
  let pg: Postgres | undefined;
  before(async () => {
    if (backend === "postgres") pg = await startPostgres();
    c = await startCairnd({ env: pg ? { CAIRN_DATABASE_URL: pg.url } : {} });
    admin = new Cairn({ url: c.url, apiKey: c.adminKey });
  });
  after(async () => {
    await c?.destroy();
    await pg?.stop();
  });

  it("is refused within 1 s of its revocation, on every route and connection, and stays refused", async () => {
    const { apiKey } = await admin.projects.create("revoke");
    const other = await admin.projects.createKey("revoke", { name: "other" });
    const v = await new Cairn({ url: c.url, apiKey: apiKey.key }).volumes.create({ name: "keyed" });
    await v.files.write("/f.txt", "x");
    const routes = ["/v1/volumes", `/v1/volumes/${v.id}/files/stat?path=%2Ff.txt`, `/v1/volumes/${v.id}/files/content?path=%2Ff.txt`, `/v1/volumes/${v.id}/files/list?path=%2F`];
    const status = async (key: string, route: string) => {
      const res = await fetch(c.url + route, { headers: { authorization: `Bearer ${key}` } });
      await res.arrayBuffer();
      return res.status;
    };
    // Used often and from several connections first: whatever a faster path remembers about this key, it remembers now.
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 20; i++) for (const r of routes) assert.equal(await status(apiKey.key, r), 200, r);
    }));
    await admin.projects.revokeKey("revoke", apiKey.id);
    const revokedAt = performance.now();
    const late: string[] = [];
    let refused = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (performance.now() - revokedAt < 1500) {
        for (const r of routes) {
          const sentAt = performance.now() - revokedAt;
          const s = await status(apiKey.key, r);
          if (s === 401) refused++;
          else if (sentAt > 1000) late.push(`${r}: ${s}, sent ${Math.round(sentAt)} ms after the revocation`);
        }
      }
    }));
    assert.deepEqual(late, [], "requests sent more than 1 s after the revocation were still served");
    assert.ok(refused > 0);
    for (const r of routes) assert.equal(await status(other.key, r), 200, `the project's other key still works on ${r}`);
  });
});

// ------------------------------------------------------------------------------------ one cairnd for the rest

describe("hot paths keep their guarantees (real cairnd)", () => {
  let c: CairndProcess;
  let cairn: Cairn;
  withCairnd({}, (s) => ({ c, cairn } = s));

  it("keeps a listing cursor valid while entries are added, removed and renamed between pages", async () => {
    const v = await cairn.volumes.create({ name: "cursor-flat" });
    // Names that sort all over the place: digits, capitals, spaces, accents, CJK, a leading dot.
    const nameOf = (i: number) =>
      i % 7 === 0 ? `É ${i}` : i % 11 === 0 ? `z-${i}` : i % 13 === 0 ? `A b ${i}.txt` : i % 17 === 0 ? `日本-${i}` : i % 19 === 0 ? `.dot-${i}` : `f${String(i).padStart(5, "0")}`;
    const initial = Array.from({ length: 3000 }, (_, i) => nameOf(i));
    for (let i = 0; i < initial.length; i += 1000) await v.files.writeMany(initial.slice(i, i + 1000).map((n) => ({ path: `/d/${n}`, content: "x" })));
    const r = rng(20261205);
    const gone = new Set<string>();
    const alive = new Set(initial);
    const seen = new Map<string, number>();
    let cursor: string | undefined;
    let pages = 0;
    let fresh = 0;
    do {
      const page = await v.files.list("/d", { limit: 100, ...(cursor ? { cursor } : {}) });
      for (const e of page.items) seen.set(e.name, (seen.get(e.name) ?? 0) + 1);
      cursor = page.nextCursor ?? undefined;
      assert.ok(++pages < 500, "the listing does not end");
      if (!cursor) break;
      // Between pages: entries on either side of the cursor go, new ones arrive on either side, one is renamed.
      for (let k = 0; k < 6; k++) {
        const n = r.pick([...alive]);
        await v.files.remove(`/d/${n}`);
        alive.delete(n);
        gone.add(n);
      }
      const added = [`0-new-${fresh}`, `f${String(Math.floor(r.next() * 3000)).padStart(5, "0")}-new-${fresh}`, `~new-${fresh}`, `É new ${fresh}`];
      fresh++;
      await v.files.writeMany(added.map((n) => ({ path: `/d/${n}`, content: "y" })));
      for (const n of added) alive.add(n);
      const from = r.pick([...alive]);
      const to = `${from}-renamed`;
      await v.files.move(`/d/${from}`, `/d/${to}`);
      alive.delete(from);
      gone.add(from);
      alive.add(to);
    } while (cursor);
    const twice = [...seen].filter(([, k]) => k > 1).map(([n]) => n);
    const skipped = initial.filter((n) => !gone.has(n) && !seen.has(n));
    assert.deepEqual(twice, [], "entries listed more than once");
    assert.deepEqual(skipped, [], "entries that existed throughout were skipped");
    await cairn.volumes.delete(v.id);
  });

  it("keeps a recursive listing cursor valid while files and whole directories come and go", async () => {
    const v = await cairn.volumes.create({ name: "cursor-deep" });
    const dirs = Array.from({ length: 20 }, (_, i) => (i % 3 === 0 ? `dir ${i}` : i % 5 === 0 ? `Ü-${i}` : `d${String(i).padStart(2, "0")}`));
    const initial = new Set<string>(dirs);
    const files: { path: string; content: string }[] = [];
    for (const d of dirs) for (let f = 0; f < 100; f++) files.push({ path: `/r/${d}/f${f}${f % 9 === 0 ? " é" : ""}`, content: "x" });
    for (const f of files) initial.add(f.path.slice("/r/".length));
    for (let i = 0; i < files.length; i += 1000) await v.files.writeMany(files.slice(i, i + 1000));
    const r = rng(7);
    const gone = new Set<string>();
    const liveDirs = new Set(dirs);
    const seen = new Map<string, number>();
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await v.files.list("/r", { recursive: true, limit: 90, ...(cursor ? { cursor } : {}) });
      for (const e of page.items) {
        const rel = e.path.slice("/r/".length);
        seen.set(rel, (seen.get(rel) ?? 0) + 1);
      }
      cursor = page.nextCursor ?? undefined;
      assert.ok(++pages < 500, "the listing does not end");
      if (!cursor) break;
      // Files go and come in random directories; every fifth page a whole directory goes and a new one arrives.
      const candidates = [...initial].filter((p) => p.includes("/") && !gone.has(p));
      for (let k = 0; k < 4; k++) {
        const p = r.pick(candidates);
        if (gone.has(p)) continue;
        await v.files.remove(`/r/${p}`);
        gone.add(p);
      }
      await v.files.writeMany([...liveDirs].slice(0, 3).map((d) => ({ path: `/r/${d}/new-${pages}`, content: "y" })));
      if (pages % 5 === 0 && liveDirs.size > 5) {
        const d = r.pick([...liveDirs]);
        await v.files.remove(`/r/${d}`, { recursive: true });
        liveDirs.delete(d);
        for (const p of initial) if (p === d || p.startsWith(`${d}/`)) gone.add(p);
        const nd = `added ${pages}`;
        await v.files.writeMany(Array.from({ length: 10 }, (_, i) => ({ path: `/r/${nd}/g${i}`, content: "z" })));
        liveDirs.add(nd);
      }
    } while (cursor);
    const twice = [...seen].filter(([, k]) => k > 1).map(([p]) => p);
    const skipped = [...initial].filter((p) => !gone.has(p) && !seen.has(p));
    assert.deepEqual(twice, [], "entries listed more than once");
    assert.deepEqual(skipped, [], "entries that existed throughout were skipped");
    await cairn.volumes.delete(v.id);
  });

  it("balances leases after 1,000 concurrent stat, content and list requests (unmounts when idle, can be deleted)", async () => {
    const v = await cairn.volumes.create({ name: "leases" });
    await v.files.writeMany([
      { path: "/s.txt", content: "small" },
      { path: "/c.bin", content: new Uint8Array(4096).fill(7) },
      ...Array.from({ length: 50 }, (_, i) => ({ path: `/dir/e${i}`, content: "e" })),
    ]);
    // A lease held across the burst: the volume must stay mounted for it, whatever the burst releases.
    const held = await holdLease(c, c.adminKey, v);
    const base = `${c.url}/v1/volumes/${v.id}/files`;
    type Kind = { what: string; url: string; headers?: Record<string, string>; expect: number | "aborted" };
    const kinds: Kind[] = [
      { what: "stat", url: `${base}/stat?path=%2Fs.txt`, expect: 200 },
      { what: "stat of nothing", url: `${base}/stat?path=%2Fnope`, expect: 404 },
      { what: "content", url: `${base}/content?path=%2Fc.bin`, expect: 200 },
      { what: "range", url: `${base}/content?path=%2Fc.bin`, headers: { range: "bytes=0-99" }, expect: 206 },
      { what: "content of nothing", url: `${base}/content?path=%2Fnope`, expect: 404 },
      { what: "list", url: `${base}/list?path=%2Fdir&limit=10`, expect: 200 },
      { what: "list with a bad cursor", url: `${base}/list?path=%2Fdir&cursor=nope`, expect: 400 },
      { what: "list of a file", url: `${base}/list?path=%2Fs.txt`, expect: 400 },
      { what: "read abandoned after its headers", url: `${base}/content?path=%2F.hold.bin`, expect: "aborted" },
    ];
    const outcomes = await Promise.all(
      Array.from({ length: 1000 }, async (_, i) => {
        const k = kinds[i % kinds.length]!;
        const ac = new AbortController();
        const res = await fetch(k.url, { headers: { authorization: `Bearer ${c.adminKey}`, ...k.headers }, signal: ac.signal });
        if (k.expect === "aborted") {
          ac.abort();
          await res.body?.cancel().catch(() => undefined);
          return res.status === 200 ? "ok" : `${k.what}: ${res.status}`;
        }
        await res.arrayBuffer();
        return res.status === k.expect ? "ok" : `${k.what}: ${res.status}, expected ${k.expect}`;
      }),
    );
    assert.deepEqual(outcomes.filter((o) => o !== "ok"), []);
    // Well past the idle grace (200 ms here): the held lease keeps the volume mounted.
    await sleep(1000);
    assert.ok(await isMounted(c, v), "the volume was unmounted while a lease was still held: a lease was released more than once");
    assert.equal(await v.files.readText("/s.txt"), "small");
    await held.release();
    let mounted = true;
    for (let i = 0; i < 50 && mounted; i++) {
      await sleep(100);
      mounted = await isMounted(c, v);
    }
    assert.ok(!mounted, "the volume is still mounted 5 s after its last request: the engine's lease count is off (a lease not released, or released twice)");
    await cairn.volumes.delete(v.id); // VOLUME_BUSY if the engine still counts a lease
  });

  describe("search agrees with find and grep on the same tree", () => {
    let v: Volume;
    let tree: string;
    let release: () => Promise<void>;
    let scratch: string;
    before(async () => {
      scratch = await mkdtemp(join(tmpdir(), "cairn-search-"));
      const t = join(scratch, "t");
      const put = async (rel: string, content: string | Buffer) => {
        await mkdir(join(t, rel, ".."), { recursive: true });
        await writeFile(join(t, rel), content);
      };
      await put("plain.txt", "a needle here\n");
      await put("with space.txt", "nothing\n");
      await put("nested dir/deeper/ünïcödé 名前.txt", "line one\nNEEDLE in capitals\nneedle again\n");
      await put("nested dir/deeper/f1.md", "needle1\n");
      await put("nested dir/f2.md", "neeedle2\n");
      await put(".hidden/needle.txt", "needle 42\n");
      await put("emoji 🎉/party.txt", "no\nno\nneedle\n");
      await put("a[1].txt", "needle\n");
      await put("b.txt", "Needle\n");
      await put("binary.bin", Buffer.concat([Buffer.from([0, 1, 2, 0]), Buffer.from("needle\n")]));
      await put("new\nline.txt", "needle\n");
      for (let i = 0; i < 300; i++) await put(`bulk/sub ${i % 10}/item ${i}.txt`, i % 7 === 0 ? `x\nneedle ${i}\n` : "x\n");
      await symlink("plain.txt", join(t, "link-to-plain"));
      await symlink("nested dir", join(t, "link-to-dir"));
      const tar = await new Promise<Buffer>((resolve, reject) =>
        execFile("tar", ["-c", "-C", t, "."], { encoding: "buffer", maxBuffer: 64 * MiB }, (err, out) => (err ? reject(err) : resolve(out))),
      );
      v = await cairn.volumes.create({ name: "search" });
      await v.files.uploadArchive("/t", tar);
      // find and grep run on the volume's own mount: it must stay mounted while they do.
      ({ release } = await holdLease(c, c.adminKey, v));
      tree = `${mountPathOf(c, v.id)}/t`;
    });
    after(async () => {
      await release?.();
      await rm(scratch, { recursive: true, force: true });
    });

    const TYPE_OF: Record<string, string> = { f: "file", d: "directory", l: "symlink" };
    const apiNames = async (glob: string) =>
      (await v.files.search({ path: "/t", glob, limit: 10_000 })).matches.map((m) => `${m.type} ${m.path.slice("/t/".length)}`).sort();
    const findNames = async (glob: string) =>
      nulSplit(await inNamespace(c, ["find", tree, "-mindepth", "1", "-name", glob, "-printf", "%y %P\\0"])).map((l) => `${TYPE_OF[l[0]!] ?? l[0]} ${l.slice(2)}`).sort();

    for (const glob of ["*", "*.txt", "*.md", "* *", "*é*", "*名前*", "f?.md", "[ab]*", ".*", "*🎉*", "item 1*", "*\n*", "needle*"]) {
      it(`names matching ${JSON.stringify(glob)} are find -name's`, async () => {
        const want = await findNames(glob);
        assert.ok(want.length > 0, "the pattern finds something");
        assert.deepEqual(await apiNames(glob), want);
      });
    }

    it(`names matching "emoji ?" are find -name's (? is one character, also outside the BMP)`, async () => {
      const want = await findNames("emoji ?");
      assert.deepEqual(want, ["directory emoji 🎉"]);
      assert.deepEqual(await apiNames("emoji ?"), want);
    });

    const grepCases: { what: string; search: { query: string; regex?: boolean; ignoreCase?: boolean }; grep: string[] }[] = [
      { what: "a literal", search: { query: "needle" }, grep: ["-F", "-e", "needle"] },
      { what: "a literal, ignoring case", search: { query: "needle", ignoreCase: true }, grep: ["-F", "-i", "-e", "needle"] },
      { what: "a regex", search: { query: "ne+dle ?\\d", regex: true }, grep: ["-P", "-e", "ne+dle ?\\d"] },
    ];
    for (const g of grepCases) {
      it(`content search for ${g.what} finds grep -rl's files and grep -rn's lines (binary files skipped, as -I)`, async () => {
        const got = (await v.files.search({ path: "/t", ...g.search, limit: 10_000 })).matches;
        const files = nulSplit(await inNamespace(c, ["grep", "-r", "-l", "-I", "-Z", ...g.grep, "--", tree], [0, 1])).map((p) => p.slice(tree.length + 1)).sort();
        assert.ok(files.length > 3, "grep finds something");
        assert.deepEqual([...new Set(got.map((m) => m.path.slice("/t/".length)))].sort(), files);
        // Lines: grep -Z ends the name with NUL, then "line:text\n".
        const out = (await inNamespace(c, ["grep", "-r", "-n", "-I", "-Z", ...g.grep, "--", tree], [0, 1])).toString("utf8");
        const lines: string[] = [];
        for (const m of out.matchAll(/([^\0]*)\0(\d+):[^\n]*\n/g)) lines.push(`${m[1]!.slice(tree.length + 1)}:${m[2]}`);
        assert.deepEqual(got.map((m) => `${m.path.slice("/t/".length)}:${m.line}`).sort(), lines.sort());
      });
    }
  });
});
