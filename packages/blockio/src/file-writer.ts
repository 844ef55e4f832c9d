/**
 * Large sequential writes of a stream into a file: cairnd writing request bodies into volumes,
 * and `volume.files.download` writing a volume's file to the local disk. Node only (the SDK loads
 * it on demand, so the rest of the SDK runs anywhere `fetch` does).
 *
 * Why not plain buffered `writev`: every byte written through the page cache lands in a page the
 * kernel must allocate, and on our machines fresh page-cache pages are expensive (a guest whose
 * idle memory is handed back to the hypervisor: `dd` into a volume with `oflag=direct` was several
 * times faster, at a fraction of the CPU, (bench/RESULTS.md, "Why the I/O code looks as it does")). The volume's loop
 * devices already use direct I/O, so with O_DIRECT here the bytes go from one reused buffer of
 * ours to the disk with no copy into any page cache on the way (docs/ARCHITECTURE.md "Volume engine": page cache once, not
 * twice — here not at all for bulk writes).
 *
 * How: chunks are copied as they arrive into 4 MiB page-aligned blocks (O_DIRECT needs aligned
 * memory, offsets and lengths; copying at once also lets the socket's buffers die young instead of
 * piling up for the garbage collector). A full block is written through a second, O_DIRECT
 * descriptor of the same file, up to two in flight while the next one fills, so the disk and the
 * socket work at the same time. The rest (a body under 4 MiB, the tail, the head up to the first
 * block boundary when a tus PATCH starts mid-block) is written with plain `writev` through the
 * caller's descriptor. Memory per writer: at most three blocks (12 MiB), from the process-wide
 * pool of aligned-blocks.ts, so their pages stay warm.
 *
 * Durability is unchanged: the caller still fdatasyncs its descriptor, which flushes the inode's
 * data, metadata and the device cache whatever descriptor wrote the data.
 */
import { constants as fsc } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { BLOCK_BYTES, giveBackBlock, takeBlock } from "./aligned-blocks.js";

export { BLOCK_BYTES };
const MAX_IN_FLIGHT = 2;

interface InFlight {
  end: number;
  done: Promise<void>;
}

export class FileWriter {
  /** File offset of the next byte not yet in `head` or `block`. */
  private next: number;
  /** File offset up to which every byte is written (the flushed prefix). */
  private settled: number;
  /** Bytes before the first block boundary (a tus PATCH that starts mid-block), written buffered. */
  private head: Uint8Array[] = [];
  private headBytes = 0;
  /** The block being filled: chunks are copied in as they arrive, so the socket's buffers die young. */
  private block: Buffer | undefined;
  private blockFill = 0;
  private direct: FileHandle | undefined;
  /** undefined: not tried yet; false: this file or filesystem cannot take O_DIRECT, buffered only. */
  private directOk: boolean | undefined;
  private readonly inFlight: InFlight[] = [];
  private failure: unknown;

  /**
   * @param fh   the caller's descriptor (opened for writing; it keeps ownership and fdatasyncs it)
   * @param path the same file's path, to open it a second time with O_DIRECT
   * @param position where the first byte goes
   */
  constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
    position: number,
  ) {
    this.next = position;
    this.settled = position;
  }

  /** Bytes handed to `write` so far end at this offset. */
  get position(): number {
    return this.next + this.headBytes + this.blockFill;
  }

  /** Every byte before this offset has been written (not necessarily synced). */
  get written(): number {
    return this.settled;
  }

  /**
   * Take one chunk; waits only when two blocks are already on their way to the disk. The chunk's
   * memory is not kept once the returned promise settles (it is copied), so a caller may read
   * into the same buffer again then.
   */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    let off = 0;
    while (off < chunk.byteLength) {
      if (this.block === undefined && this.next % BLOCK_BYTES !== 0) {
        const want = BLOCK_BYTES - (this.next % BLOCK_BYTES) - this.headBytes;
        const n = Math.min(want, chunk.byteLength - off);
        this.head.push(new Uint8Array(chunk.subarray(off, off + n))); // a copy: see write()
        this.headBytes += n;
        off += n;
        if (n === want) await this.writeHead();
        continue;
      }
      this.block ??= takeBlock();
      const n = Math.min(BLOCK_BYTES - this.blockFill, chunk.byteLength - off);
      this.block.set(n === chunk.byteLength ? chunk : chunk.subarray(off, off + n), this.blockFill);
      this.blockFill += n;
      off += n;
      if (this.blockFill === BLOCK_BYTES) await this.submitBlock();
    }
  }

  /** Write everything received and wait until it is written. */
  async flush(): Promise<void> {
    await this.settleAll();
    if (this.headBytes > 0) await this.writeHead();
    if (this.block !== undefined) {
      const block = this.block;
      const bytes = this.blockFill;
      this.block = undefined;
      this.blockFill = 0;
      try {
        if (bytes > 0) await writeAllAt(this.fh, [block.subarray(0, bytes)], this.next);
      } finally {
        giveBackBlock(block);
      }
      this.next += bytes;
      this.settled = this.next;
    }
  }

  /** Wait for writes in flight (errors ignored), close the O_DIRECT descriptor; the caller's stays open. */
  async close(): Promise<void> {
    await Promise.allSettled(this.inFlight.map((f) => f.done));
    this.inFlight.length = 0;
    if (this.block !== undefined) giveBackBlock(this.block);
    this.block = undefined;
    this.blockFill = 0;
    await this.direct?.close().catch(() => undefined);
    this.direct = undefined;
  }

  private async writeHead(): Promise<void> {
    const chunks = this.head;
    const bytes = this.headBytes;
    this.head = [];
    this.headBytes = 0;
    await this.settleAll();
    await writeAllAt(this.fh, chunks, this.next);
    this.next += bytes;
    this.settled = this.next;
  }

  private async settleAll(): Promise<void> {
    while (this.inFlight.length > 0) await this.settleOne();
    if (this.failure !== undefined) throw this.failure;
  }

  private async settleOne(): Promise<void> {
    const first = this.inFlight[0]!;
    await first.done;
    this.inFlight.shift();
    if (this.failure !== undefined) throw this.failure;
    this.settled = first.end;
  }

  /** Start writing the full block at `this.next`; returns once the next block can be filled. */
  private async submitBlock(): Promise<void> {
    const buf = this.block!;
    const at = this.next;
    this.block = undefined;
    this.blockFill = 0;
    this.next += BLOCK_BYTES;
    if (!(await this.openDirect())) {
      try {
        await this.settleAll();
        await writeAllAt(this.fh, [buf], at);
      } finally {
        giveBackBlock(buf);
      }
      this.settled = this.next;
      return;
    }
    while (this.inFlight.length >= MAX_IN_FLIGHT) await this.settleOne();
    const done = this.writeDirect(buf, at).then(
      () => giveBackBlock(buf),
      (err) => {
        giveBackBlock(buf);
        this.failure ??= err;
      },
    );
    this.inFlight.push({ end: this.next, done });
  }

  private async writeDirect(buf: Buffer, at: number): Promise<void> {
    let done = 0;
    try {
      while (done < BLOCK_BYTES) {
        const { bytesWritten } = await this.direct!.write(buf, done, BLOCK_BYTES - done, at + done);
        if (bytesWritten === 0) break;
        done += bytesWritten;
      }
    } catch (err) {
      // EINVAL: the filesystem or this buffer does not suit O_DIRECT after all. Stay correct.
      if ((err as NodeJS.ErrnoException).code !== "EINVAL") throw err;
      this.directOk = false;
    }
    // A short or refused direct write: the rest goes through the page cache (any alignment).
    if (done < BLOCK_BYTES) await writeAllAt(this.fh, [buf.subarray(done, BLOCK_BYTES)], at + done);
  }

  private async openDirect(): Promise<boolean> {
    if (this.directOk !== undefined) return this.directOk;
    this.directOk = false;
    let d: FileHandle | undefined;
    try {
      d = await open(this.path, fsc.O_WRONLY | fsc.O_DIRECT | fsc.O_NOFOLLOW);
      const [a, b] = await Promise.all([this.fh.stat(), d.stat()]);
      // The path is in a volume others may change: write through it only if it is still our file.
      if (a.ino !== b.ino || a.dev !== b.dev) throw new Error("replaced");
      this.direct = d;
      this.directOk = true;
    } catch {
      await d?.close().catch(() => undefined);
    }
    return this.directOk;
  }
}

/** `writev` at an offset until everything is written (a short write continues with the rest). */
export async function writeAllAt(fh: FileHandle, chunks: Uint8Array[], position: number): Promise<void> {
  let pending = chunks;
  let at = position;
  while (pending.length > 0) {
    const { bytesWritten } = await fh.writev(pending, at);
    at += bytesWritten;
    let skip = bytesWritten;
    const rest: Uint8Array[] = [];
    for (const c of pending) {
      if (skip >= c.byteLength) {
        skip -= c.byteLength;
        continue;
      }
      rest.push(skip > 0 ? c.subarray(skip) : c);
      skip = 0;
    }
    pending = rest;
  }
}
