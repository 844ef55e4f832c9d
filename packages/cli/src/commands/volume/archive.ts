import { basename } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { Command, Option } from "commander";
import type { ArchiveFormat } from "@cairn/protocol";
import { contextOf } from "../../context.js";
import { counted, progress } from "../../progress.js";
import { writeAtomically, writeToFile } from "../../transfer.js";

export function archiveCommand(): Command {
  return new Command("archive")
    .description("Download a directory of a volume as one tar, tar.gz or zip archive")
    .argument("<volume>", "volume name or id")
    .argument("[path]", "directory (or file) inside the volume, default /")
    .addOption(new Option("--format <format>", "archive format").choices(["tar", "tar.gz", "zip"]).default("tar"))
    .option("-o, --output <file>", "write it here (default: stdout when piped, else <name>.<format>)")
    .addHelpText(
      "after",
      `
Symlinks are stored as links; modes and mtimes are kept. To upload and extract an archive, use
\`cairn volume put <archive> <volume> <dir> --extract\`.

Examples:
  $ cairn volume archive team-data /project --format tar.gz -o project.tar.gz
  $ cairn volume archive team-data /logs | tar -t`,
    )
    .action(async (ref: string, path: string | undefined, options: { format: ArchiveFormat; output?: string }, command: Command) => {
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      const dir = path ?? "/";
      const toStdout = options.output === "-" || (options.output === undefined && !process.stdout.isTTY);
      const body = await volume.files.downloadArchive(dir, { format: options.format, signal: ctx.signal });
      const source = Readable.fromWeb(body as WebReadableStream<Uint8Array>);
      const bar = progress(`archiving ${volume.name}:${dir}`, undefined);
      try {
        if (toStdout) {
          try {
            await pipeline(counted(source, bar), process.stdout, { end: false });
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== "EPIPE") throw err;
          }
          return;
        }
        const target = options.output ?? `${dir === "/" ? volume.name : basename(dir)}.${options.format}`;
        await writeAtomically(target, (file) => writeToFile(file, counted(source, bar)));
        bar.done();
        if (process.stderr.isTTY) process.stderr.write(`${ctx.err.green("✓")} wrote ${target}\n`);
      } finally {
        bar.done();
      }
    });
}
