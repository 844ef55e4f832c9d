/**
 * Block I/O shared by cairnd and the SDK (Node only): 4 MiB page-aligned blocks kept in a small
 * pool, a reader that pumps a file range into a sink, and a writer that uses O_DIRECT where the
 * filesystem allows it.
 */
export { BLOCK_BYTES, takeBlock, giveBackBlock } from "./aligned-blocks.js";
export { pumpFile, LocalFileChangedError } from "./file-reader.js";
export { FileWriter } from "./file-writer.js";
