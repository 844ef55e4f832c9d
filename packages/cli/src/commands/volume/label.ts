import { Command } from "commander";
import { parseLabels } from "../../args.js";
import { contextOf } from "../../context.js";
import { UsageError } from "../../errors.js";
import { formatLabels, printJson } from "../../output.js";

export function labelCommand(): Command {
  return new Command("label")
    .description("Replace a volume's labels with the given key=value pairs")
    .argument("<volume>", "volume name or id")
    .argument("[labels...]", "key=value pairs; labels not given are removed")
    .option("--clear", "remove all labels")
    .addHelpText(
      "after",
      `
Examples:
  $ cairn volume label team-data team=ml
  $ cairn volume label team-data team=ml env=prod
  $ cairn volume label team-data --clear`,
    )
    .action(async (ref: string, pairs: string[], options: { clear?: boolean }, command: Command) => {
      // An empty list would silently wipe every label: make that an explicit choice.
      if (pairs.length === 0 && !options.clear) {
        throw new UsageError("Give key=value labels, or --clear to remove all labels", "e.g. cairn volume label team-data team=ml");
      }
      if (pairs.length > 0 && options.clear) throw new UsageError("Give labels or --clear, not both");
      const labels = parseLabels(pairs);
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.update(ref, { labels, signal: ctx.signal });
      if (ctx.json) printJson(volume.info);
      else process.stdout.write(`Labels of ${ctx.out.bold(volume.name)}: ${formatLabels(volume.info.labels)}\n`);
    });
}
