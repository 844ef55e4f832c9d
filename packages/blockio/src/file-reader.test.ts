/** pumpFile against files in the host's /tmp, through the page cache and with O_DIRECT. No root needed. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { constants as fsc } from "node:fs";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUFFER_BYTES, LocalFileChangedError, pumpFile, type ChunkSink } from "./file-reader.js";

/** A sink that copies what it is given and calls back later, as a socket does. */
function collector(): ChunkSink & { bytes(): Buffer } {
  const parts: Buffer[] = [];
  return {
    write(chunk, callback) {
      parts.push(Buffer.from(chunk));
      setImmediate(() => callback());
      return true;
    },
    bytes: () => Buffer.concat(parts),
  };
}

describe("pumpFile", () => {
  it("sends exactly the range asked for, through the page cache and with O_DIRECT", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-reader-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, "f.bin");
    const data = randomBytes(2 * BUFFER_BYTES + 12345);
    await writeFile(path, data);
    const fh = await open(path, "r");
    const direct = await open(path, fsc.O_RDONLY | fsc.O_DIRECT);
    t.after(async () => {
      await fh.close();
      await direct.close();
    });
    const ranges: Array<[number, number]> = [[0, data.length], [1, data.length - 1], [4097, BUFFER_BYTES + 3], [data.length - 7, 7], [BUFFER_BYTES - 1, 2]];
    // slowReadMs 0: every buffered read counts as slow, so all after the first go through O_DIRECT.
    for (const options of [{}, { direct, slowReadMs: 0 }, { direct, slowReadMs: Infinity }]) {
      for (const [position, length] of ranges) {
        const sink = collector();
        const sent = await pumpFile(fh, position, length, sink, options);
        assert.equal(sent, length);
        assert.ok(sink.bytes().equals(data.subarray(position, position + length)), `${JSON.stringify({ position, length, direct: "direct" in options, slow: (options as { slowReadMs?: number }).slowReadMs })}`);
      }
    }
  });

  it("refuses to send less than promised when the file is shorter", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-reader-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "short"), randomBytes(1000));
    const fh = await open(join(dir, "short"), "r");
    t.after(() => fh.close());
    await assert.rejects(pumpFile(fh, 0, 2000, collector()), (err: unknown) => err instanceof LocalFileChangedError && err.at === 1000);
  });

  it("stops at once on the signal, even when the sink never calls back", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-reader-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "f"), randomBytes(4 * BUFFER_BYTES));
    const fh = await open(join(dir, "f"), "r");
    t.after(() => fh.close());
    const ac = new AbortController();
    let writes = 0;
    const dead: ChunkSink = {
      write() {
        if (++writes === 2) setTimeout(() => ac.abort(), 10);
        return false; // never calls back: a socket that died
      },
    };
    const sent = await pumpFile(fh, 0, 4 * BUFFER_BYTES, dead, { signal: ac.signal });
    assert.ok(sent < 4 * BUFFER_BYTES && sent > 0);
  });
});
