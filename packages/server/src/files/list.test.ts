/**
 * Paged listings of big directories (their names are kept sorted between pages): an entry that
 * exists throughout a listing is listed exactly once, whatever is added and removed between pages.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, rmdir, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { listFiles } from "./ops.js";

const roots: string[] = [];
after(() => Promise.all(roots.map((r) => rm(r, { recursive: true, force: true }))));

async function tree(files: string[]): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "cairn-list-"));
  roots.push(root);
  for (const f of files) {
    await mkdir(join(root, f, ".."), { recursive: true });
    await writeFile(join(root, f), "");
  }
  return root;
}

const names = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(5, "0")}`);

/** Page through `path`, calling `between` after each page; the paths listed, in order. */
async function listAll(root: string, path: string, options: { limit: number; recursive?: boolean }, between: (page: number) => Promise<void>) {
  const seen: string[] = [];
  let cursor: string | undefined;
  for (let page = 0; ; page++) {
    const r = await listFiles(root, { path, limit: options.limit, recursive: options.recursive, cursor });
    seen.push(...r.items.map((i) => i.path));
    if (!r.nextCursor) return seen;
    cursor = r.nextCursor;
    await between(page);
  }
}

describe("paged listings", () => {
  it("list every entry that exists throughout exactly once while others come and go", async () => {
    const stay = names(3000, "s");
    const go = names(1000, "g");
    const root = await tree([...stay, ...go].map((n) => `big/${n}`));
    await sleep(100); // older than a timestamp tick: the first page may keep its snapshot
    let added = 0;
    const seen = await listAll(root, "/big", { limit: 97 }, async (page) => {
      // Remove some not yet listed and some already listed; add new ones before and after the cursor.
      for (let i = 0; i < 20; i++) {
        const victim = go[(page * 20 + i) % go.length]!;
        await unlink(join(root, "big", victim)).catch(() => undefined);
      }
      for (const prefix of ["a", "z"]) await writeFile(join(root, "big", `${prefix}${page}-${added++}`), "");
    });
    const paths = new Set(seen);
    assert.equal(paths.size, seen.length, "nothing listed twice");
    for (const s of stay) assert.ok(paths.has(`/big/${s}`), `${s} existed throughout and was listed`);
    assert.deepEqual([...seen].sort(), seen, "in name order");
  });

  it("a listing started after a change sees it, also right after an earlier listing kept the directory", async () => {
    const root = await tree(names(2500, "f").map((n) => `d/${n}`));
    await sleep(100);
    const first = await listFiles(root, { path: "/d", limit: 10 });
    assert.equal(first.items[0]?.path, "/d/f00000");
    await writeFile(join(root, "d", "0-new"), "");
    const again = await listFiles(root, { path: "/d", limit: 10 });
    assert.equal(again.items[0]?.path, "/d/0-new", "a new listing is current");
  });

  it("keep recursive listings whole across pages while directories are added and removed", async () => {
    const stay = names(2200, "s").map((n) => `r/a/${n}`).concat(names(50, "t").map((n) => `r/b/${n}`));
    const root = await tree([...stay, "r/c/x", "r/c/y"]);
    await sleep(100);
    const seen = await listAll(root, "/r", { limit: 250, recursive: true }, async (page) => {
      if (page === 1) {
        await rm(join(root, "r/c"), { recursive: true });
        await mkdir(join(root, "r/0"));
      }
      if (page === 3) await rmdir(join(root, "r/0"));
    });
    const paths = new Set(seen);
    assert.equal(paths.size, seen.length, "nothing listed twice");
    for (const s of stay) assert.ok(paths.has(`/${s}`), `/${s} existed throughout and was listed`);
  });
});
