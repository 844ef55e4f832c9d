import { Command } from "commander";
import { formatSize } from "@cairn/protocol";
import { sizeFrom } from "../../args.js";
import { contextOf } from "../../context.js";
import { UsageError } from "../../errors.js";
import { printJson } from "../../output.js";

/** What each `resize.mode` means for the person who asked. */
const MODE_NOTE = {
  online: "online: grown while mounted, nothing was interrupted",
  offline: "offline: grown while unmounted, as the filesystem could not grow online here",
} as const;

export function resizeCommand(): Command {
  return new Command("resize")
    .description("Grow a volume (volumes never shrink)")
    .argument("<volume>", "volume name or id")
    .option("--size <size>", "new capacity, e.g. 2GiB, 20G")
    .option("--size-gb <n>", "new capacity in whole GiB")
    .addHelpText(
      "after",
      `
Examples:
  $ cairn volume resize team-data --size 2GiB
  $ cairn volume resize big_vol --size-gb 20`,
    )
    .action(async (ref: string, options: { size?: string; sizeGb?: string }, command: Command) => {
      const size = sizeFrom(options);
      if (size.sizeBytes === undefined && size.sizeGb === undefined) {
        throw new UsageError("Give the new size with --size <size> or --size-gb <n>", "e.g. cairn volume resize team-data --size 2GiB");
      }
      const ctx = contextOf(command);
      const { volume, resize } = await ctx.cairn.volumes.resize(ref, { ...size, signal: ctx.signal });
      if (ctx.json) {
        printJson({ volume: volume.info, resize });
        return;
      }
      const now = formatSize(volume.sizeBytes);
      if (resize === null || resize.mode === "none") {
        process.stdout.write(`${volume.name} is already ${now}; nothing to do\n`);
        return;
      }
      const before = formatSize(resize.previousSizeBytes);
      process.stdout.write(`Grew ${ctx.out.bold(volume.name)} from ${before} to ${now} (${MODE_NOTE[resize.mode]})\n`);
    });
}
