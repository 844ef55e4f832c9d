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
 * Measured on 2 cores, 2 GiB bodies (PUT, stream PUT, tus upload, then the GETs, one cairnd):
 *
 *   collect every     RSS over a fresh idle    time in these scavenges per GiB of PUT (1 / 4 at once)
 *   never (V8's own)  +44-54 MiB (heap +32-40)   –
 *   16 MiB            +34-36 MiB (heap +22)      78-109 ms (1.4-1.7 ms each)
 *   8 MiB             +24-27 MiB (heap +10)      100-128 ms (0.8-1.0 ms each)
 *   4 MiB             +19-25 MiB (heap +5)       166-191 ms (0.75 ms each)
 *
 * A scavenge's cost grows with the buffers it frees, work V8's own scavenges do too, so only part
 * of that time is extra; against cairnd's ~1-1.5 s of CPU per GiB of PUT it stayed inside the
 * run-to-run noise of the benches. 8 MiB keeps RSS well within a few tens of MiB at about half the
 * collector time of 4 MiB.
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
