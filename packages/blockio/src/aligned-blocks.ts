/**
 * The 4 MiB page-aligned blocks that large file I/O goes through: `pumpFile` reads a file into
 * them to send it (file-reader.ts), `FileWriter` collects a body in them to write it with
 * O_DIRECT (file-writer.ts). O_DIRECT needs aligned memory; a WebAssembly memory is mapped on page
 * boundaries, unlike `Buffer.alloc` (malloc puts a header in front).
 *
 * One pool for both, so a process that sends and receives (cairnd, or a client that uploads and
 * downloads) keeps at most POOL_MAX idle blocks, not a pool per direction: their pages stay
 * faulted in for the next transfer (fresh pages are what costs most on our machines), and what an
 * idle process holds stays at 16 MiB (a pool per direction kept more (bench/RESULTS.md, "Why the I/O code looks as it does")).
 */

export const BLOCK_BYTES = 4 * 1024 * 1024;
/** Idle blocks kept for the next transfer (16 MiB): one transfer's worth plus one. */
const POOL_MAX = 4;
const pool: Buffer[] = [];

/** A page-aligned block of BLOCK_BYTES, from the pool when one is idle. */
export function takeBlock(): Buffer {
  return pool.pop() ?? Buffer.from(new WebAssembly.Memory({ initial: BLOCK_BYTES / 65536, maximum: BLOCK_BYTES / 65536 }).buffer);
}

/** Hand a block back once nothing (no write, no socket) uses its memory any more. */
export function giveBackBlock(block: Buffer): void {
  if (pool.length < POOL_MAX) pool.push(block);
}
