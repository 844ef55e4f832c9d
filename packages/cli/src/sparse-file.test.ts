import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, open, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SPARSE_BLOCK, writeSparse } from "./sparse-file.js";

/** Yield `data` in chunks of the given sizes (cycled), as a network stream would. */
async function* chunks(data: Buffer, sizes: number[]): AsyncGenerator<Uint8Array> {
  for (let off = 0, i = 0; off < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield new Uint8Array(data.subarray(off, off + n));
    off += n;
  }
}

describe("writeSparse", () => {
  it("copies byte for byte, whatever the chunking, and leaves holes for zero blocks", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-sparse-"));
    try {
      // data, 4 MiB of zeros, data not aligned to a block, then a zero tail.
      const data = Buffer.concat([randomBytes(100_000), Buffer.alloc(4 * 1024 * 1024), randomBytes(SPARSE_BLOCK + 7), Buffer.alloc(3 * SPARSE_BLOCK)]);
      for (const sizes of [[data.length], [1000, 70_000, 13], [SPARSE_BLOCK]]) {
        const path = join(dir, `out-${sizes.join("-")}`);
        const file = await open(path, "w");
        let seen = 0;
        const n = await writeSparse(file, chunks(data, sizes), (b) => (seen += b));
        await file.close();
        assert.equal(n, data.length);
        assert.equal(seen, data.length);
        assert.ok((await readFile(path)).equals(data), `content for chunks ${sizes}`);
        const st = await stat(path);
        assert.equal(st.size, data.length, "the zero tail counts in the size");
        assert.ok(st.blocks * 512 < 1024 * 1024, `holes where the zeros were: ${st.blocks * 512} bytes allocated`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("an empty stream gives an empty file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-sparse-"));
    try {
      const file = await open(join(dir, "empty"), "w");
      assert.equal(await writeSparse(file, chunks(Buffer.alloc(0), [1])), 0);
      await file.close();
      assert.equal((await stat(join(dir, "empty"))).size, 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
