import { createReadStream } from "node:fs";
import { lstat } from "node:fs/promises";
import { basename } from "node:path";
import { Command, Option } from "commander";
import { CairnError, formatSize, parseSize, type ArchiveFormat } from "@cairn/protocol";
import { contextOf } from "../../context.js";
import { UsageError } from "../../errors.js";
import { printJson } from "../../output.js";
import { counted, progress } from "../../progress.js";
import { packDirectory, rememberUpload, rememberedUpload, treeSize, uploadKey } from "../../transfer.js";

/** Files from this size up go as resumable (tus) uploads unless --no-resumable. */
const RESUMABLE_FROM = 64 * 1024 * 1024;

interface PutOptions {
  resumable?: boolean;
  extract?: boolean;
  format?: ArchiveFormat;
  chunkSize?: string;
}

/**
 * The tar stream, ending only once tar exited cleanly: a local failure (an unreadable file) breaks
 * the upload instead of sending a short archive that cairnd would extract as if it were whole.
 */
async function* checked(stream: AsyncIterable<Uint8Array>, done: Promise<void>): AsyncGenerator<Uint8Array> {
  yield* stream;
  await done;
}

function archiveFormatOf(file: string, given: ArchiveFormat | undefined): ArchiveFormat {
  if (given) return given;
  if (/\.(tar\.gz|tgz)$/i.test(file)) return "tar.gz";
  if (/\.zip$/i.test(file)) return "zip";
  if (/\.tar$/i.test(file)) return "tar";
  throw new UsageError(`Cannot tell the archive format of ${file} from its name; add --format tar|tar.gz|zip`);
}

export function putCommand(): Command {
  return new Command("put")
    .description("Upload a file, a directory or stdin into a volume (directories keep modes, mtimes and symlinks)")
    .argument("<local>", "a local file, a directory, or - for stdin")
    .argument("<volume>", "volume name or id")
    .argument("<path>", "where it goes in the volume: a directory's contents go into this directory; a file becomes this file (or goes into it when it ends in /)")
    .option("--resumable", `upload a file resumably (tus) even below ${formatSize(RESUMABLE_FROM)}`)
    .option("--no-resumable", "upload a large file in one request instead")
    .option("--extract", "the local file is an archive (tar, tar.gz, zip): extract it into <path>")
    .addOption(new Option("--format <format>", "archive format for --extract (default: from the file name)").choices(["tar", "tar.gz", "zip"]))
    .option("--chunk-size <size>", "bytes per resumable chunk (default 32MiB)")
    .addHelpText(
      "after",
      `
A directory is sent as one tar stream and extracted all or nothing: if it does not fit, nothing
of it appears. Files from ${formatSize(RESUMABLE_FROM)} up are sent resumably: if the transfer breaks,
run the same command again and it continues where it stopped. A progress bar shows on stderr when it
is a terminal.

Examples:
  $ cairn volume put ./site team-data /www
  $ cairn volume put ./model.bin team-data /models/
  $ pg_dump shop | cairn volume put - team-data /backups/shop.sql
  $ cairn volume put project.tar.gz team-data /project --extract`,
    )
    .action(async (local: string, ref: string, path: string, options: PutOptions, command: Command) => {
      const ctx = contextOf(command);
      const chunkSize = options.chunkSize === undefined ? undefined : parseSize(options.chunkSize);
      if (chunkSize !== undefined && !(chunkSize > 0)) throw new UsageError(`Invalid --chunk-size "${options.chunkSize}": give a size such as 32MiB`);
      const st = local === "-" ? undefined : await lstat(local).catch((err: NodeJS.ErrnoException) => {
        throw new UsageError(`Cannot read ${local}: ${err.code ?? err.message}`);
      });
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      const report = (result: object, what: string) => {
        if (ctx.jsonRequested) printJson(result);
        else if (process.stderr.isTTY) process.stderr.write(`${ctx.err.green("✓")} ${what}\n`);
      };

      if (st === undefined) {
        // stdin: streamed as it comes, length unknown.
        const bar = progress(`uploading stdin`, undefined);
        try {
          const r = await volume.files.write(path, counted(process.stdin, bar), { signal: ctx.signal });
          bar.done();
          report(r, `wrote ${formatSize(r.size)} to ${volume.name}:${r.path}`);
        } finally {
          bar.done();
          process.stdin.destroy();
        }
        return;
      }

      if (st.isDirectory() || options.extract) {
        const format = st.isDirectory() ? "tar" : archiveFormatOf(local, options.format);
        const total = st.isDirectory() ? (await treeSize(local)).bytes : st.size;
        const bar = progress(`uploading ${basename(local)}`, total);
        const packed = st.isDirectory() ? packDirectory(local) : undefined;
        const source = packed ? packed.stream : createReadStream(local);
        try {
          const r = await volume.files.uploadArchive(path, counted(packed ? checked(source, packed.done) : source, bar), { format, signal: ctx.signal });
          bar.done();
          report(r, `extracted ${r.files} files (${formatSize(r.bytes)}) into ${volume.name}:${r.path}`);
          if (r.skipped.length > 0 && process.stderr.isTTY) process.stderr.write(ctx.err.yellow(`skipped (devices, fifos, sockets): ${r.skipped.join(", ")}\n`));
        } catch (err) {
          packed?.child.kill();
          throw err;
        } finally {
          bar.done();
          source.destroy();
        }
        return;
      }

      if (!st.isFile()) throw new UsageError(`${local} is neither a file nor a directory`);
      const target = path.endsWith("/") ? path + basename(local) : path;
      const bar = progress(`uploading ${basename(local)}`, st.size);
      try {
        if (options.resumable ?? st.size >= RESUMABLE_FROM) {
          const key = uploadKey(ctx.url, volume.id, target, local, st);
          // Each chunk goes from the file to the socket (the SDK reads it where the server is).
          const uploadOptions = {
            signal: ctx.signal,
            ...(chunkSize !== undefined ? { chunkSize } : {}),
            onProgress: (n: number) => bar.update(n),
            onUploadUrl: (url: string) => void rememberUpload(key, url),
          };
          const previous = await rememberedUpload(key);
          let r;
          try {
            r = await volume.files.uploadFromFile(target, local, previous ? { ...uploadOptions, uploadUrl: previous } : uploadOptions);
          } catch (err) {
            // The earlier upload expired or was removed: start again.
            if (!(previous && err instanceof CairnError && err.code === "UPLOAD_NOT_FOUND")) throw err;
            r = await volume.files.uploadFromFile(target, local, uploadOptions);
          }
          await rememberUpload(key, undefined);
          bar.done();
          report({ path: r.path, size: r.size }, `uploaded ${formatSize(r.size)} to ${volume.name}:${r.path}`);
        } else {
          // One request, sent from reused buffers (the SDK's fastest path for a local file).
          const r = await volume.files.writeFromFile(target, local, { signal: ctx.signal, onProgress: (n) => bar.update(n) });
          bar.done();
          report(r, `wrote ${formatSize(r.size)} to ${volume.name}:${r.path}`);
        }
      } finally {
        bar.done();
      }
    });
}
