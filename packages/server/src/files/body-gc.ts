/**
 * Keep the memory a request body passes through small: collect V8's young generation after every
 * `YOUNG_GC_EVERY` bytes of request body read, process-wide.
 *
 * Why: Node's HTTP parser hands each body read (up to 64 KiB) to JavaScript as a new buffer, and
 * cairnd copies it into its own 4 MiB blocks at once (file-writer.ts), so every such buffer is
 * garbage right away. V8 frees them only at its next scavenge, and it starts one for array
 * buffers only once 32 MiB of them are young (a constant of V8's, not a flag): up to 32 MiB of
 * dead socket buffers sit in malloc's heap, which cairnd's malloc settings keep at its peak.
 *
 * Collecting every 8 MiB keeps RSS within a few tens of MiB at about half the collector time of
 * 4 MiB, and within the benches' run-to-run noise (bench/RESULTS.md, "Why the I/O code looks as it does").
 *
 * The collector is V8's `gc`, which cairnd's launcher exposes (`--expose-gc`, config.ts). Without
 * it (cairnd started some other way) this does nothing and the memory bound is V8's own.
 */

/** Bytes of request body between two young-generation collections. */
export const YOUNG_GC_EVERY = 8 * 1024 * 1024;

type Gc = (options: { type: "minor" | "major"; execution?: "sync" | "async" }) => void;
const gc = (globalThis as { gc?: Gc }).gc;
let sinceLast = 0;

/** Count `bytes` of request body read; collect young garbage when enough has passed. */
export function bodyBytesRead(bytes: number): void {
  sinceLast += bytes;
  if (sinceLast < YOUNG_GC_EVERY || !gc) return;
  sinceLast = 0;
  gc({ type: "minor" });
}
