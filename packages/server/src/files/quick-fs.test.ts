/** The synchronous fast paths of the file API answer exactly as their thread-pool forms would. */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { lstat, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lstatMany, lstatQuick, readSmallFile } from "./quick-fs.js";

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
const scratch = async () => {
  const d = await mkdtemp(join(tmpdir(), "cairn-quick-"));
  dirs.push(d);
  return d;
};

describe("quick file system calls", () => {
  it("lstat: undefined for nothing there, errors for a path through a file", async () => {
    const d = await scratch();
    await writeFile(join(d, "f"), "x");
    assert.equal((await lstatQuick(join(d, "f")))?.size, 1);
    assert.equal(await lstatQuick(join(d, "missing")), undefined);
    await assert.rejects(lstatQuick(join(d, "f", "below")), { code: "ENOTDIR" });
    const many = await lstatMany([join(d, "f"), join(d, "missing"), join(d, "f", "below")]);
    assert.deepEqual(many.map((s) => s?.size), [1, undefined, undefined]);
  });

  it("reads a small file whole, and nothing that is bigger, another file, or a symlink", async () => {
    const d = await scratch();
    const data = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));
    await writeFile(join(d, "f"), data);
    const { ino } = await lstat(join(d, "f"));
    assert.deepEqual(readSmallFile(join(d, "f"), ino, 4096)?.data, data);
    assert.equal(readSmallFile(join(d, "f"), ino, 2999), undefined, "bigger than asked");
    await writeFile(join(d, "g"), "other");
    assert.equal(readSmallFile(join(d, "g"), ino, 4096), undefined, "not the inode that was resolved");
    await symlink(join(d, "f"), join(d, "link"));
    assert.equal(readSmallFile(join(d, "link"), ino, 4096), undefined, "a symlink is never followed");
  });
});
