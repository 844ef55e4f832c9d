import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import { Command, Option } from "commander";
import { ACCESS_MODES, type AccessMode } from "@cairn/protocol";
import { sizeFrom } from "../../args.js";
import { contextOf } from "../../context.js";
import { UsageError } from "../../errors.js";
import { printJson, volumeDetails } from "../../output.js";
import { counted, progress } from "../../progress.js";

interface ImportOptions {
  from: string;
  format?: "image" | "tar";
  size?: string;
  sizeGb?: string;
  accessMode?: AccessMode;
}

/** Without --format: a `.tar` file is an archive, anything else an image (what `checkpoint export` writes). */
function formatOf(options: ImportOptions): "image" | "tar" {
  if (options.format !== undefined) return options.format;
  if (options.from === "-") throw new UsageError("Give --format image or --format tar when importing from stdin");
  return /\.tar$/i.test(options.from) ? "tar" : "image";
}

export function importCommand(): Command {
  return new Command("import")
    .description("Create a volume from a filesystem image or a tar archive (e.g. a checkpoint export)")
    .argument("<name>", "name of the new volume")
    .requiredOption("--from <file>", "the image or archive to upload ('-' is stdin)")
    .addOption(new Option("--format <format>", "image: a raw ext4/XFS image; tar: an archive of files (default: tar for *.tar, else image)").choices(["image", "tar"]))
    .option("--size <size>", "capacity for a tar import, e.g. 10GiB (default 1 GiB; an image keeps its own size)")
    .option("--size-gb <n>", "capacity for a tar import in whole GiB")
    .addOption(new Option("--access-mode <mode>", "who may mount it").choices(ACCESS_MODES))
    .addHelpText(
      "after",
      `
All or nothing: an upload that is not a clean image or a valid archive, or does not fit, leaves no
volume behind. A progress bar shows on stderr when it is a terminal.

Examples:
  $ cairn checkpoint export team-data before-migration -o team-data.img
  $ cairn volume import moved --from team-data.img
  $ cairn volume import from-files --from backup.tar --size 10GiB
  $ ssh other-host cairn checkpoint export team-data nightly | cairn volume import team-data --from - --format image`,
    )
    .action(async (name: string, options: ImportOptions, command: Command) => {
      const format = formatOf(options);
      const size = sizeFrom(options);
      const ctx = contextOf(command);
      const fromStdin = options.from === "-";
      const input: Readable = fromStdin ? process.stdin : await openLocal(options.from);
      try {
        const total = fromStdin ? undefined : (await stat(options.from)).size;
        const bar = progress(`importing ${name}`, total);
        try {
          const request: Parameters<typeof ctx.cairn.volumes.import>[0] = { name, format, data: counted(input, bar), ...size, signal: ctx.signal };
          if (options.accessMode !== undefined) request.accessMode = options.accessMode;
          const volume = await ctx.cairn.volumes.import(request);
          bar.done();
          if (ctx.json) printJson(volume.info);
          else process.stdout.write(volumeDetails(volume.info, undefined, ctx.out));
        } finally {
          bar.done();
        }
      } finally {
        // On an early failure nobody consumed the input: release it, or an open stdin pipe would
        // keep the process alive.
        input.destroy();
      }
    });
}

function openLocal(file: string): Promise<Readable> {
  return new Promise((resolve, reject) => {
    const stream = createReadStream(file, { highWaterMark: 1024 * 1024 });
    stream.once("open", () => resolve(stream));
    // A local file that cannot be read is a bad argument, not a failure of Cairn.
    stream.once("error", (err) => reject(new UsageError(`Cannot read --from ${file}: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
  });
}
