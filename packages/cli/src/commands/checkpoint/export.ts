import { stat } from "node:fs/promises";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { Command, Option } from "commander";
import { formatSize } from "@cairn/protocol";
import { contextOf } from "../../context.js";
import { UsageError } from "../../errors.js";
import { printJson } from "../../output.js";
import { counted, progress } from "../../progress.js";
import { writeSparse } from "../../sparse-file.js";
import { writeAtomically } from "../../transfer.js";

interface ExportOptions {
  format: "image" | "tar";
  output?: string;
}

export function exportCommand(): Command {
  return new Command("export")
    .description("Download a checkpoint: the raw filesystem image, or a tar of its files")
    .argument("<volume>", "volume name or id")
    .argument("<checkpoint>", "checkpoint name or id")
    .addOption(new Option("--format <format>", "image: the raw ext4/XFS image; tar: an archive of the files").choices(["image", "tar"]).default("image"))
    .option("-o, --output <file>", "write to this file (sparse: zero blocks become holes) instead of stdout")
    .addHelpText(
      "after",
      `
Either format can be turned back into a volume, on this cairnd or another, with
\`cairn volume import\`. An image has the volume's full size but is written sparse with -o, so it
takes on disk about what the volume holds. The file appears only once the download is complete.
A progress bar shows on stderr when it is a terminal.

Examples:
  $ cairn checkpoint export team-data before-migration -o team-data.img
  $ cairn checkpoint export team-data before-migration --format tar -o team-data.tar
  $ cairn checkpoint export team-data before-migration --format tar | tar -t | head`,
    )
    .action(async (ref: string, checkpointRef: string, options: ExportOptions, command: Command) => {
      const toStdout = options.output === undefined || options.output === "-";
      // Megabytes of binary on a terminal help nobody and can leave it in a strange state.
      if (toStdout && process.stdout.isTTY) {
        throw new UsageError("Refusing to write a checkpoint to the terminal", `give -o <file>, or pipe it: cairn checkpoint export ${ref} ${checkpointRef} | …`);
      }
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      // Also the size for the progress bar: an image is exactly the volume's size at the checkpoint.
      const checkpoint = await volume.checkpoints.get(checkpointRef, { signal: ctx.signal });
      const what = `${volume.name}:${checkpoint.name}`;
      const download = async () =>
        Readable.fromWeb((await volume.checkpoints.export(checkpoint.id, { format: options.format, signal: ctx.signal })) as WebReadableStream<Uint8Array>);
      const total = options.format === "image" ? checkpoint.sizeBytes : undefined;

      if (toStdout) {
        const body = await download();
        const bar = progress(`exporting ${what}`, total);
        try {
          await pipeline(counted(body, bar), process.stdout, { end: false });
        } catch (err) {
          // The reader went away (`| head`): what it wanted it got; stop quietly, like cat.
          if ((err as NodeJS.ErrnoException).code !== "EPIPE") throw err;
        } finally {
          bar.done();
        }
        return;
      }

      const target = options.output!;
      const bytes = await writeAtomically(
        target,
        async (file) => {
          const body = await download();
          const bar = progress(`exporting ${what}`, total);
          try {
            return await writeSparse(file, body, (n) => bar.add(n));
          } finally {
            bar.done();
            body.destroy();
          }
        },
        `-o ${target}`,
      );
      const onDisk = (await stat(target)).blocks * 512;
      if (ctx.jsonRequested) printJson({ volume: volume.name, checkpoint: checkpoint.name, format: options.format, path: target, bytes, diskBytes: onDisk });
      else if (process.stderr.isTTY) {
        process.stderr.write(`${ctx.err.green("✓")} exported ${what} (${options.format}, ${formatSize(bytes)}, ${formatSize(onDisk)} on disk) to ${target}\n`);
      }
    });
}
