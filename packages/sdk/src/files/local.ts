/** Transfers between a volume and the local disk (Node only: node modules are imported when called). */
import { normalizeVolumePath, type WriteFileResult } from "@cairn/protocol";
import { LocalFileChangedError } from "@cairn/blockio/errors";
import type { RequestOptions } from "../transport/http.js";
import type { WritePreconditions } from "./types.js";
import { bulkWrite, readFile, writeFile, type FileTarget } from "./content.js";

/**
 * Download a file to the local disk (Node): written to a temporary file beside `localPath`,
 * synced, then renamed, so `localPath` is never a partial file; an existing file there is
 * replaced. Large files are written in 4 MiB blocks with O_DIRECT where the local filesystem
 * allows it (no copy into the page cache: 2-3x faster than piping `read` into a file here).
 *
 * @example
 * const { bytes } = await volume.files.download("/big.bin", "./big.bin", { onProgress: (n) => bar.update(n) });
 */
export async function download(t: FileTarget, path: string, localPath: string, options: RequestOptions & { onProgress?: (bytes: number) => void } = {}): Promise<{ path: string; bytes: number }> {
  const [{ open, rename, rm }, { dirname, basename, join }, { FileWriter }] = await Promise.all([
    import("node:fs/promises"),
    import("node:path"),
    import("@cairn/blockio"),
  ]);
  const partial = join(dirname(localPath), `.${basename(localPath)}.cairn-partial-${process.pid}-${Date.now().toString(36)}`);
  const fh = await open(partial, "wx", 0o644);
  const writer = new FileWriter(fh, partial, 0);
  const take = async (piece: Uint8Array) => {
    await writer.write(piece);
    options.onProgress?.(writer.position);
  };
  let done = false;
  try {
    const query = { path: normalizeVolumePath(path) };
    // Node and plain http: the body arrives in one reused buffer (bulk-http.ts); else through fetch.
    const bulk = await t.http.bulk({ method: "GET", path: t.base("/content"), query, onBody: take, signal: options.signal });
    if (bulk === undefined) {
      const reader = (await readFile(t, path, options)).getReader();
      try {
        for (let r = await reader.read(); !r.done; r = await reader.read()) await take(r.value);
      } catch (err) {
        await reader.cancel().catch(() => undefined);
        throw err;
      }
    }
    await writer.flush();
    await writer.close();
    await fh.datasync();
    await fh.close();
    await rename(partial, localPath);
    const dir = await open(dirname(localPath), "r");
    await dir.sync().finally(() => dir.close());
    done = true;
    return { path: localPath, bytes: writer.position };
  } finally {
    if (!done) {
      await writer.close().catch(() => undefined);
      await fh.close().catch(() => undefined);
      await rm(partial, { force: true });
    }
  }
}

/**
 * Write a local file into the volume (Node): atomic like `write`, and the fastest way to send
 * one. Over plain http it is read into a few reused buffers and sent as they free up
 * (bulk-http.ts), with no stream or fetch in between; elsewhere it goes through `write`. A file
 * that changes size while it is sent fails the write, and the volume keeps the old content. For
 * a transfer that must survive a broken connection, use `upload` (resumable).
 *
 * @example
 * const r = await volume.files.writeFromFile("/models/weights.bin", "./weights.bin", { onProgress: (n, total) => bar.update(n, total) });
 */
export async function writeFromFile(
  t: FileTarget,
  path: string,
  localPath: string,
  options: RequestOptions & WritePreconditions & { onProgress?: (bytes: number, total: number) => void } = {},
): Promise<WriteFileResult> {
  const { open } = await import("node:fs/promises");
  const fh = await open(localPath, "r");
  try {
    const { size } = await fh.stat();
    const onSent = (n: number) => options.onProgress?.(n, size);
    const written = await bulkWrite(t, path, { fh, position: 0, length: size, onSent, name: localPath }, options);
    if (written) return written;
    let sent = 0;
    async function* counted(): AsyncGenerator<Uint8Array> {
      for await (const piece of fh.createReadStream({ start: 0, end: Math.max(0, size - 1), autoClose: false, highWaterMark: 4 * 1024 * 1024 })) {
        sent += (piece as Uint8Array).byteLength;
        if (sent > size) throw new LocalFileChangedError(localPath, size, "grew");
        yield piece as Uint8Array;
        onSent(sent);
      }
      if (sent < size) throw new LocalFileChangedError(localPath, sent);
    }
    return await writeFile(t, path, size === 0 ? new Uint8Array(0) : counted(), options);
  } finally {
    await fh.close();
  }
}
