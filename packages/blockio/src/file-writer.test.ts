/** FileWriter against the host's /tmp (O_DIRECT where the filesystem takes it). No root needed. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BLOCK_BYTES, FileWriter } from "./file-writer.js";

/** Split `data` into chunks of varying sizes (1 byte to ~300 KiB), as a socket would. */
function* chunked(data: Buffer, seed: number): Generator<Buffer> {
  let x = seed;
  for (let off = 0; off < data.length; ) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const n = Math.min(data.length - off, x % 7 === 0 ? 1 + (x % 17) : 1 + (x % (300 * 1024)));
    yield data.subarray(off, off + n);
    off += n;
  }
}

describe("FileWriter", () => {
  it("writes exactly what it is given, at any size and start offset", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-writer-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const sizes = [0, 1, 4095, BLOCK_BYTES - 1, BLOCK_BYTES, BLOCK_BYTES + 1, 3 * BLOCK_BYTES + 12345];
    const starts = [0, 4096, 777, BLOCK_BYTES + 5];
    for (const size of sizes) {
      for (const start of starts) {
        const path = join(dir, `f-${size}-${start}`);
        const prefix = randomBytes(start);
        await writeFile(path, Buffer.concat([prefix, randomBytes(1000)])); // junk past `start` is overwritten
        const data = randomBytes(size);
        const fh = await open(path, "r+");
        const w = new FileWriter(fh, path, start);
        try {
          for (const c of chunked(data, size + start)) await w.write(c);
          await w.flush();
          assert.equal(w.position, start + size);
          assert.equal(w.written, start + size);
          await fh.truncate(start + size);
        } finally {
          await w.close();
          await fh.close();
        }
        const back = await readFile(path);
        assert.equal(back.length, start + size, `size ${size} at ${start}`);
        assert.ok(back.subarray(0, start).equals(prefix), `prefix kept, size ${size} at ${start}`);
        assert.ok(back.subarray(start).equals(data), `content, size ${size} at ${start}`);
      }
    }
  });

  it("reports a write error and keeps nothing in flight after close", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-writer-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, "ro");
    await writeFile(path, "");
    const fh = await open(path, "r"); // not writable: every write fails with EBADF
    const w = new FileWriter(fh, path, 0);
    try {
      await assert.rejects(async () => {
        for (const c of chunked(randomBytes(2 * BLOCK_BYTES + 10), 1)) await w.write(c);
        await w.flush();
      });
    } finally {
      await w.close();
      await fh.close();
    }
  });
});
