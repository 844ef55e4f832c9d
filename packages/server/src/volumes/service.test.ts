/** Volumes, files and checkpoints through the HTTP API on the directory engine (no root). */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { Volume } from "@cairn/protocol";
import { useFakeCairnd, codeOf } from "../testing/node-test.js";

const raw = { "content-type": "application/octet-stream" };

describe("volumes, files and checkpoints (fakes)", () => {
  const cairnd = useFakeCairnd();
  const call = (o: Parameters<ReturnType<typeof cairnd>["request"]>[0]) => cairnd().request(o);
  const json = async <T>(o: Parameters<ReturnType<typeof cairnd>["request"]>[0]): Promise<T> => {
    const r = await call(o);
    assert.ok(r.statusCode < 300, `${o.method} ${o.url}: ${r.statusCode} ${r.body}`);
    return (r.body ? JSON.parse(r.body) : undefined) as T;
  };
  const put = (vol: string, path: string, body: string | Buffer, headers: Record<string, string> = {}) =>
    call({ method: "PUT", url: `/v1/volumes/${vol}/files/content?path=${encodeURIComponent(path)}`, payload: body, headers: { ...raw, ...headers } });
  const get = (vol: string, path: string) => call({ method: "GET", url: `/v1/volumes/${vol}/files/content?path=${encodeURIComponent(path)}` });

  it("creates a volume with the default size, finds it by name and by id, and refuses a second of the name", async () => {
    const v = await json<Volume>({ method: "POST", url: "/v1/volumes", payload: { name: "first" } });
    assert.equal(v.sizeBytes, 1024 ** 3);
    assert.equal(v.status, "ready");
    assert.equal((await json<Volume>({ method: "GET", url: "/v1/volumes/first" })).id, v.id);
    assert.equal((await json<Volume>({ method: "GET", url: `/v1/volumes/${v.id}` })).name, "first");
    assert.equal(codeOf(await call({ method: "POST", url: "/v1/volumes", payload: { name: "first" } })), "VOLUME_ALREADY_EXISTS");
  });

  it("gives back the existing volume when asked to (ifExists: return)", async () => {
    const a = await json<Volume>({ method: "POST", url: "/v1/volumes", payload: { name: "idem" } });
    const r = await call({ method: "POST", url: "/v1/volumes", payload: { name: "idem", ifExists: "return" } });
    assert.equal(r.statusCode, 200);
    assert.equal((JSON.parse(r.body) as Volume).id, a.id);
  });

  it("filters by labels (AND) and pages with a cursor, no volume twice, none left out", async () => {
    for (let i = 0; i < 7; i++) {
      await json({ method: "POST", url: "/v1/volumes", payload: { name: `paged-${i}`, labels: { team: i % 2 ? "odd" : "even", kind: "paged" } } });
    }
    const odd = await json<{ items: Volume[] }>({ method: "GET", url: "/v1/volumes?label=team=odd&label=kind=paged" });
    assert.deepEqual(odd.items.map((v) => v.name).sort(), ["paged-1", "paged-3", "paged-5"]);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: Volume[]; nextCursor: string | null } = await json({ method: "GET", url: `/v1/volumes?label=kind=paged&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}` });
      assert.ok(page.items.length <= 2);
      seen.push(...page.items.map((v) => v.name!));
      cursor = page.nextCursor;
    } while (cursor);
    assert.deepEqual(seen.sort(), Array.from({ length: 7 }, (_, i) => `paged-${i}`));
  });

  it("returns only the fields asked for", async () => {
    const list = await json<{ items: Record<string, unknown>[] }>({ method: "GET", url: "/v1/volumes?fields=name,sizeBytes&limit=1" });
    assert.deepEqual(Object.keys(list.items[0]!).sort(), ["name", "sizeBytes"]);
  });

  it("grows a volume and keeps its files; never shrinks it", async () => {
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "grows" } });
    await put("grows", "/keep.txt", "kept");
    const r = await json<{ volume: Volume; resize: { mode: string } }>({ method: "PATCH", url: "/v1/volumes/grows", payload: { sizeGb: 2 } });
    assert.equal(r.volume.sizeBytes, 2 * 1024 ** 3);
    assert.equal((await get("grows", "/keep.txt")).body, "kept");
    assert.equal(codeOf(await call({ method: "PATCH", url: "/v1/volumes/grows", payload: { sizeGb: 1 } })), "VOLUME_SHRINK_NOT_ALLOWED");
  });

  it("replaces labels with a PATCH", async () => {
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "relabel", labels: { a: "1" } } });
    const r = await json<{ volume: Volume }>({ method: "PATCH", url: "/v1/volumes/relabel", payload: { labels: { b: "2" } } });
    assert.deepEqual(r.volume.labels, { b: "2" });
  });

  it("round-trips bytes exactly: binary, empty, and a file in a new directory tree", async () => {
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "bytes" } });
    const data = randomBytes(256 * 1024);
    assert.equal((await put("bytes", "/deep/er/blob.bin", data)).statusCode, 201);
    assert.deepEqual((await get("bytes", "/deep/er/blob.bin")).rawPayload, data);
    assert.equal((await put("bytes", "/empty", "")).statusCode, 201);
    assert.equal((await get("bytes", "/empty")).rawPayload.length, 0);
  });

  it("serves a byte range", async () => {
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "ranges" } });
    await put("ranges", "/abc.txt", "abcdefghij");
    const r = await call({ method: "GET", url: "/v1/volumes/ranges/files/content?path=/abc.txt", headers: { range: "bytes=2-4" } });
    assert.equal(r.statusCode, 206);
    assert.equal(r.body, "cde");
  });

  it("writes only when the ETag still matches (If-Match), and creates only when missing (If-None-Match)", async () => {
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "etags" } });
    const first = JSON.parse((await put("etags", "/f.txt", "one")).body) as { etag: string };
    assert.equal((await put("etags", "/f.txt", "two", { "if-match": first.etag })).statusCode, 200);
    assert.equal(codeOf(await put("etags", "/f.txt", "three", { "if-match": first.etag })), "PRECONDITION_FAILED");
    assert.equal((await get("etags", "/f.txt")).body, "two");
    assert.equal(codeOf(await put("etags", "/f.txt", "four", { "if-none-match": "*" })), "PRECONDITION_FAILED");
  });

  it("stats, moves, makes directories and removes, as a filesystem would", async () => {
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "ops" } });
    await put("ops", "/a.txt", "a");
    const st = await json<{ type: string; size: number }>({ method: "GET", url: "/v1/volumes/ops/files/stat?path=/a.txt" });
    assert.deepEqual([st.type, st.size], ["file", 1]);
    await json({ method: "POST", url: "/v1/volumes/ops/files/mkdir", payload: { path: "/d/e" } });
    await json({ method: "POST", url: "/v1/volumes/ops/files/move", payload: { from: "/a.txt", to: "/d/e/a.txt" } });
    assert.equal(codeOf(await get("ops", "/a.txt")), "PATH_NOT_FOUND");
    assert.equal((await get("ops", "/d/e/a.txt")).body, "a");
    assert.equal(codeOf(await call({ method: "DELETE", url: "/v1/volumes/ops/files?path=/d" })), "DIRECTORY_NOT_EMPTY");
    assert.ok((await call({ method: "DELETE", url: "/v1/volumes/ops/files?path=/d&recursive=true" })).statusCode < 300);
    assert.equal(codeOf(await call({ method: "GET", url: "/v1/volumes/ops/files/stat?path=/d" })), "PATH_NOT_FOUND");
  });

  it("pages a directory listing with a cursor that survives entries added and removed", async () => {
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "listing" } });
    const names = Array.from({ length: 30 }, (_, i) => `f${String(i).padStart(2, "0")}`);
    await json({ method: "POST", url: "/v1/volumes/listing/files/batch", payload: { files: names.map((n) => ({ path: `/${n}`, content: n })) } });
    const seen: string[] = [];
    let cursor: string | null = null;
    let page = 0;
    do {
      const r: { items: { name: string }[]; nextCursor: string | null } = await json({ method: "GET", url: `/v1/volumes/listing/files/list?path=/&limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}` });
      seen.push(...r.items.map((i) => i.name));
      cursor = r.nextCursor;
      if (page++ === 1) {
        // Between pages: one entry removed, one added.
        await call({ method: "DELETE", url: "/v1/volumes/listing/files?path=/f29" });
        await put("listing", "/g-new", "new");
      }
    } while (cursor);
    assert.equal(new Set(seen).size, seen.length, "no entry listed twice");
    for (const n of names.slice(0, 29)) assert.ok(seen.includes(n), `${n} existed throughout and was listed`);
  });

  it("edits one occurrence, and replaces across files (dry run changes nothing)", async () => {
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "edits" } });
    await put("edits", "/conf.txt", "port=80\nhost=a\n");
    await put("edits", "/other.txt", "port=80\n");
    await json({ method: "POST", url: "/v1/volumes/edits/files/edit", payload: { path: "/conf.txt", oldString: "host=a", newString: "host=b" } });
    assert.equal((await get("edits", "/conf.txt")).body, "port=80\nhost=b\n");
    const dry = await json<{ files: unknown[] }>({ method: "POST", url: "/v1/volumes/edits/files/replace", payload: { search: "port=80", replacement: "port=8080", dryRun: true } });
    assert.equal(dry.files.length, 2);
    assert.equal((await get("edits", "/other.txt")).body, "port=80\n");
    await json({ method: "POST", url: "/v1/volumes/edits/files/replace", payload: { search: "port=80", replacement: "port=8080" } });
    assert.equal((await get("edits", "/other.txt")).body, "port=8080\n");
  });

  it("finds files by name and by content", async () => {
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "search" } });
    await json({ method: "POST", url: "/v1/volumes/search/files/batch", payload: { files: [
      { path: "/src/a.ts", content: "export const needle = 1;\n" },
      { path: "/src/b.ts", content: "nothing here\n" },
      { path: "/docs/needle.md", content: "# doc\n" },
    ] } });
    const byName = await json<{ matches: { path: string }[] }>({ method: "GET", url: "/v1/volumes/search/files/search?glob=*.ts" });
    assert.deepEqual(byName.matches.map((i) => i.path).sort(), ["/src/a.ts", "/src/b.ts"]);
    const byContent = await json<{ matches: { path: string }[] }>({ method: "GET", url: "/v1/volumes/search/files/search?query=needle" });
    assert.deepEqual([...new Set(byContent.matches.map((i) => i.path))], ["/src/a.ts"]);
  });

  it("exports a tar of a directory and imports it into another volume, byte for byte", async () => {
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "tar-src" } });
    const data = randomBytes(70_000);
    await put("tar-src", "/pkg/data.bin", data);
    await put("tar-src", "/pkg/readme.txt", "read me\n");
    const tar = await call({ method: "GET", url: "/v1/volumes/tar-src/files/archive?path=/pkg&format=tar" });
    assert.equal(tar.statusCode, 200, tar.body.slice(0, 200));
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "tar-dst" } });
    const up = await call({ method: "PUT", url: "/v1/volumes/tar-dst/files/archive?path=/restored&format=tar", payload: tar.rawPayload, headers: { "content-type": "application/x-tar" } });
    assert.ok(up.statusCode < 300, up.body);
    assert.deepEqual((await get("tar-dst", "/restored/data.bin")).rawPayload, data);
    assert.equal((await get("tar-dst", "/restored/readme.txt")).body, "read me\n");
  });

  it("signs a URL that reads one file without a key, and nothing else", async () => {
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "signed" } });
    await put("signed", "/shared.txt", "shared");
    await put("signed", "/private.txt", "private");
    const s = await json<{ url: string; pathAndQuery: string }>({ method: "POST", url: "/v1/volumes/signed/files/sign", payload: { path: "/shared.txt", expiresIn: 60 } });
    const u = new URL(s.url);
    assert.equal((await call({ method: "GET", url: u.pathname + u.search, key: null })).body, "shared");
    const other = new URL(u);
    other.searchParams.set("path", "/private.txt");
    assert.equal(codeOf(await call({ method: "GET", url: other.pathname + other.search, key: null })), "FORBIDDEN");
  });

  it("checkpoints and restores: later writes gone, the checkpoint's files back", async () => {
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "cp-vol" } });
    await put("cp-vol", "/state.txt", "v1");
    await json({ method: "POST", url: "/v1/volumes/cp-vol/checkpoints", payload: { name: "before" } });
    await put("cp-vol", "/state.txt", "v2");
    await put("cp-vol", "/later.txt", "later");
    await json({ method: "POST", url: "/v1/volumes/cp-vol/checkpoints/before/restore" });
    assert.equal((await get("cp-vol", "/state.txt")).body, "v1");
    assert.equal(codeOf(await get("cp-vol", "/later.txt")), "PATH_NOT_FOUND");
  });

  it("forks a volume from a checkpoint: the two never share a write", async () => {
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "fork-origin" } });
    await put("fork-origin", "/f.txt", "origin");
    await json({ method: "POST", url: "/v1/volumes/fork-origin/checkpoints", payload: { name: "base" } });
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "fork-copy", fromCheckpoint: "fork-origin:base" } });
    await put("fork-copy", "/f.txt", "copy");
    assert.equal((await get("fork-origin", "/f.txt")).body, "origin");
    assert.equal((await get("fork-copy", "/f.txt")).body, "copy");
  });

  it("refuses to restore a volume a running sandbox has mounted read-write", async () => {
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "busy-restore" } });
    await json({ method: "POST", url: "/v1/volumes/busy-restore/checkpoints", payload: { name: "cp" } });
    await json({ method: "POST", url: "/v1/sandboxes", payload: { volumes: [{ volume: "busy-restore", mountPath: "/w" }] } });
    const r = await call({ method: "POST", url: "/v1/volumes/busy-restore/checkpoints/cp/restore" });
    assert.ok(["VOLUME_BUSY", "VOLUME_ALREADY_ATTACHED"].includes(codeOf(r)), r.body);
  });

  it("deletes a volume: gone from get and list, its name free again", async () => {
    const v = await json<Volume>({ method: "POST", url: "/v1/volumes", payload: { name: "doomed" } });
    assert.ok((await call({ method: "DELETE", url: "/v1/volumes/doomed" })).statusCode < 300);
    assert.equal(codeOf(await call({ method: "GET", url: `/v1/volumes/${v.id}` })), "VOLUME_NOT_FOUND");
    const again = await json<Volume>({ method: "POST", url: "/v1/volumes", payload: { name: "doomed" } });
    assert.notEqual(again.id, v.id);
  });

  it("refuses to delete a volume a sandbox has attached", async () => {
    await json({ method: "POST", url: "/v1/volumes", payload: { name: "in-use" } });
    await json({ method: "POST", url: "/v1/sandboxes", payload: { volumes: [{ volume: "in-use", mountPath: "/u" }] } });
    assert.ok(["VOLUME_BUSY", "VOLUME_ALREADY_ATTACHED"].includes(codeOf(await call({ method: "DELETE", url: "/v1/volumes/in-use" }))));
  });
});
