/**
 * `cairn volume get <volume> <path> [dest]`: download a file, or a directory (as a tar stream
 * unpacked by the local tar, so modes, mtimes and symlinks come back as they were).
 */
import { lstat } from "node:fs/promises";
import { basename, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { formatSize } from "@cairn/protocol";
import type { Context } from "../../context.js";
import { UsageError } from "../../errors.js";
import { printJson } from "../../output.js";
import { counted, progress } from "../../progress.js";
import { ensureDirectory, unpackInto } from "../../transfer.js";

const nodeStream = (s: ReadableStream<Uint8Array>) => Readable.fromWeb(s as WebReadableStream<Uint8Array>);

export async function download(ctx: Context, ref: string, path: string, dest: string | undefined): Promise<void> {
  const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
  const entry = await volume.files.stat(path, { follow: true, signal: ctx.signal });
  const report = (result: object, what: string) => {
    if (ctx.jsonRequested) printJson(result);
    else if (process.stderr.isTTY) process.stderr.write(`${ctx.err.green("✓")} ${what}\n`);
  };

  if (entry.type === "directory") {
    if (dest === "-") throw new UsageError("A directory cannot go to stdout; give a local directory, or use `cairn volume archive` for a tar stream");
    const target = dest ?? (entry.path === "/" ? volume.name : basename(entry.path));
    await ensureDirectory(target);
    const bar = progress(`downloading ${entry.path}`, undefined);
    const tar = unpackInto(target);
    try {
      const body = await volume.files.downloadArchive(path, { format: "tar", signal: ctx.signal });
      await Promise.all([pipeline(counted(nodeStream(body), bar), tar.stdin), tar.done]);
    } catch (err) {
      tar.child.kill();
      throw err;
    } finally {
      bar.done();
    }
    report({ path: entry.path, to: target }, `downloaded ${volume.name}:${entry.path} into ${target}`);
    return;
  }
  if (entry.type !== "file") throw new UsageError(`${entry.path} is a ${entry.type}; only files and directories can be downloaded`);

  if (dest === "-") {
    const body = await volume.files.read(path, { signal: ctx.signal });
    try {
      await pipeline(nodeStream(body), process.stdout, { end: false });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EPIPE") throw err;
    }
    return;
  }
  let target = dest ?? basename(entry.path);
  if ((await lstat(target).catch(() => undefined))?.isDirectory()) target = join(target, basename(entry.path));
  // The SDK writes a temp file next to the target and renames it when complete: never a half file under its name.
  const bar = progress(`downloading ${basename(entry.path)}`, entry.size);
  try {
    await volume.files.download(path, target, { signal: ctx.signal, onProgress: (n) => bar.update(n) });
  } catch (err) {
    // A local filesystem error (a system call failed), not the server's answer.
    const e = err as NodeJS.ErrnoException;
    if (typeof e.syscall === "string") throw new UsageError(`Cannot write ${target}: ${e.code ?? e.message}`);
    throw err;
  } finally {
    bar.done();
  }
  report({ path: entry.path, to: target, size: entry.size }, `downloaded ${formatSize(entry.size)} to ${target}`);
}
