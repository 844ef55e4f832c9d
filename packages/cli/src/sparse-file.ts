/**
 * Write a stream to a file leaving holes where it is all zeros. A checkpoint image is mostly
 * unallocated space: written densely, a 100 GiB volume holding 1 GiB of files would take 100 GiB
 * on the local disk. cairnd stores imported zero blocks as holes too, so the round trip stays thin.
 */
import type { FileHandle } from "node:fs/promises";

/** 64 KiB: a multiple of every common filesystem block size, and of ext4's and XFS's. */
export const SPARSE_BLOCK = 64 * 1024;
const ZERO = Buffer.alloc(SPARSE_BLOCK);

const isZero = (block: Buffer) => block.length === SPARSE_BLOCK ? block.equals(ZERO) : block.equals(ZERO.subarray(0, block.length));

/**
 * Copy `source` into `file` (opened for writing, empty) from offset 0. All-zero 64 KiB blocks are
 * skipped with a seek rather than written; runs of data blocks go out in one write. The file ends
 * at the stream's length even when its tail is a hole. Returns the bytes copied.
 */
export async function writeSparse(file: FileHandle, source: AsyncIterable<Uint8Array>, onChunk: (bytes: number) => void = () => undefined): Promise<number> {
  let position = 0; // file offset of `pending[0]`
  let pending: Buffer = Buffer.alloc(0);

  /** Write the data blocks of `buf` (which starts at `position`), skip its zero blocks. */
  const flush = async (buf: Buffer) => {
    let runStart = -1;
    for (let off = 0; off < buf.length; off += SPARSE_BLOCK) {
      const block = buf.subarray(off, Math.min(off + SPARSE_BLOCK, buf.length));
      const zero = isZero(block);
      if (!zero && runStart < 0) runStart = off;
      if (zero && runStart >= 0) {
        await writeAll(file, buf.subarray(runStart, off), position + runStart);
        runStart = -1;
      }
    }
    if (runStart >= 0) await writeAll(file, buf.subarray(runStart), position + runStart);
    position += buf.length;
  };

  for await (const chunk of source) {
    onChunk(chunk.byteLength);
    pending = pending.length === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.concat([pending, chunk]);
    // Keep blocks aligned to the file: hand over whole blocks only, keep the remainder.
    const whole = pending.length - (pending.length % SPARSE_BLOCK);
    if (whole > 0) await flush(pending.subarray(0, whole));
    // Copy what is kept (under one block): the chunk's memory is the source's, not ours.
    pending = Buffer.from(pending.subarray(whole));
  }
  await flush(pending);
  // A trailing hole was never written: set the length explicitly.
  await file.truncate(position);
  return position;
}

async function writeAll(file: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await file.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}
