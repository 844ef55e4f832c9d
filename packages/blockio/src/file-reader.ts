/**
 * Large sequential reads of a file into a socket: cairnd sending a volume's file as a response
 * body, and `volume.files.writeFromFile` sending a local file as a request body. Node only (the
 * SDK loads it on demand).
 *
 * Why not `fs.createReadStream(...).pipe(out)`: a read stream allocates a fresh buffer for every
 * read, and on our machines fresh memory is expensive twice over. Its pages must be faulted in
 * (the guest hands idle memory back to the hypervisor), and every buffer counts as V8 "external
 * memory": a process that streams a GiB that way runs a full garbage collection every few dozen
 * MiB. Reused buffers cost the client a fraction of the CPU (bench/RESULTS.md, "Why the I/O code looks as it does").
 *
 * How: `BUFFERS` buffers of `BUFFER_BYTES` (page-aligned blocks from aligned-blocks.ts), each
 * filled by one `read` and handed to `out.write` with a callback; a buffer is read into again
 * only after that callback, when the socket has taken its bytes. The next read overlaps the
 * previous write.
 *
 * cairnd reads the parts of a body of 4 MiB and more that are not in the page cache with O_DIRECT
 * (`direct`; the usual case after a write, since cairnd writes bodies with O_DIRECT too): they go
 * from the disk into these buffers without passing through new page-cache pages, which costs
 * less CPU, every time, than a cold read through the cache. A cached file is read from the cache:
 * O_DIRECT would go to the disk and be slower (bench/RESULTS.md, "Why the I/O code looks as it does").
 */
import type { FileHandle } from "node:fs/promises";
import { BLOCK_BYTES, giveBackBlock, takeBlock } from "./aligned-blocks.js";
import { LocalFileChangedError } from "./errors.js";
export { LocalFileChangedError };

export const BUFFER_BYTES = BLOCK_BYTES;
const BUFFERS = 3;

/** What `pumpFile` writes to: a `net.Socket` or an `http.ServerResponse`. */
export interface ChunkSink {
  write(chunk: Uint8Array, callback: (err?: Error | null) => void): boolean;
}

export interface PumpOptions {
  /** The file's name, for the error when it changes while it is sent. */
  name?: string;
  /** Called after each buffer is handed to the sink, with the bytes handed over so far. */
  onProgress?: (bytes: number) => void;
  /**
   * Stop early (the peer went away): resolves at once with the bytes handed over until then, not
   * waiting for write callbacks a dead socket may never call.
   */
  signal?: AbortSignal;
  /**
   * The same file opened a second time with O_DIRECT, for the parts of it that are not in the
   * page cache: those are read through it, into page-aligned buffers, never copied into fresh
   * page-cache pages (what a cold read costs most here). Reads start through the page cache; one
   * slower than the cache delivers (SLOW_READ_MS per buffer) sends the next DIRECT_RUN buffers
   * through `direct`, then the cache is tried again. A read `direct` refuses (EINVAL: a filesystem
   * without direct I/O) falls back to `fh` for good. The caller keeps ownership of both handles.
   */
  direct?: FileHandle;
  /** For tests: what counts as a slow buffered read (default SLOW_READ_MS; 0: every read). */
  slowReadMs?: number;
}

/**
 * A buffered read of BUFFER_BYTES that takes longer than this came from the disk, not the page
 * cache, which gives 4 MiB several times faster than the disk (bench/RESULTS.md, "Why the I/O code looks as it does").
 */
const SLOW_READ_MS = 2;
/** Buffers (64 MiB) read with O_DIRECT after a slow buffered read, before the cache is tried again. */
const DIRECT_RUN = 16;

/** O_DIRECT needs offsets, lengths and memory aligned to the logical block size; a page covers any. */
const ALIGN = 4096;
const alignDown = (n: number) => n - (n % ALIGN);
const alignUp = (n: number) => alignDown(n + ALIGN - 1);


/**
 * Write `length` bytes of `fh` from `position` to `sink`. Resolves once the sink has taken every
 * byte (every write callback ran); rejects on a read error, a write error, or a file that ends
 * early (`LocalFileChangedError`, after which the sink has a short body: the caller must end the
 * connection, not the response).
 */
export async function pumpFile(fh: FileHandle, position: number, length: number, sink: ChunkSink, options: PumpOptions = {}): Promise<number> {
  let direct = options.direct;
  // A body under one buffer gets a buffer of its size (not pooled); larger ones pooled buffers.
  const pooled = direct !== undefined || length >= BUFFER_BYTES;
  const free: Buffer[] = [];
  const count = Math.min(BUFFERS, Math.max(1, Math.ceil(length / BUFFER_BYTES)));
  for (let i = 0; i < count; i++) free.push(pooled ? takeBlock() : Buffer.allocUnsafeSlow(Math.max(1, length)));
  let waiting: (() => void) | undefined;
  let writeError: Error | undefined;
  /** Buffers handed to the sink and not yet released (a dead socket may never release them). */
  let pending = 0;
  const stopped = () => options.signal?.aborted === true;
  const wake = () => {
    const w = waiting;
    waiting = undefined;
    w?.();
  };
  const release = (buf: Buffer, err?: Error | null) => {
    pending--;
    if (err) writeError ??= err;
    free.push(buf);
    wake();
  };
  const until = async (ready: () => boolean) => {
    while (!ready() && !stopped()) await new Promise<void>((r) => (waiting = r));
  };
  /** Read the next piece into `buf`: [offset within buf, bytes of the file from position + sent]. */
  /** Buffers still to read with O_DIRECT before the page cache is tried again. */
  let directLeft = 0;
  const readAt = async (buf: Buffer, at: number, want: number): Promise<[number, number]> => {
    if (direct && directLeft > 0) {
      directLeft--;
      const from = alignDown(at);
      const skip = at - from;
      try {
        const { bytesRead } = await direct.read(buf, 0, Math.min(buf.length, alignUp(skip + want)), from);
        return [skip, Math.max(0, Math.min(bytesRead - skip, want))];
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EINVAL") throw err;
        direct = undefined; // this filesystem does not do direct I/O after all: stay correct
      }
    }
    const t0 = performance.now();
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, want), at);
    // Slower than the page cache gives: the file is not cached here, read on with O_DIRECT.
    if (direct && bytesRead > 0 && performance.now() - t0 >= ((options.slowReadMs ?? SLOW_READ_MS) * bytesRead) / BUFFER_BYTES) directLeft = DIRECT_RUN;
    return [0, bytesRead];
  };
  options.signal?.addEventListener("abort", wake);
  try {
    let sent = 0;
    while (sent < length) {
      await until(() => free.length > 0 || writeError !== undefined);
      if (writeError) throw writeError;
      if (stopped()) return sent;
      const buf = free.pop()!;
      const [offset, bytes] = await readAt(buf, position + sent, length - sent).catch((err: unknown) => {
        free.push(buf);
        throw err;
      });
      if (bytes === 0) throw new LocalFileChangedError(options.name ?? "The file", position + sent);
      if (stopped()) return sent;
      sent += bytes;
      pending++;
      sink.write(offset === 0 && bytes === buf.length ? buf : buf.subarray(offset, offset + bytes), (err) => release(buf, err));
      options.onProgress?.(sent);
    }
    await until(() => pending === 0 || writeError !== undefined);
    if (writeError && !stopped()) throw writeError;
    return sent;
  } finally {
    options.signal?.removeEventListener("abort", wake);
    // Back to the pool only when no write still holds one of them (after an early stop, the
    // socket may still be sending from a buffer: those are left to the garbage collector).
    if (pooled && pending === 0) for (const buf of free) giveBackBlock(buf);
  }
}
