import { Command } from "commander";
import { collect, parseFields } from "../../args.js";
import { contextOf } from "../../context.js";
import { pickFields, printJson, volumeDetails } from "../../output.js";

export function getCommand(): Command {
  return new Command("get")
    .description("Show one volume, by name or id")
    .argument("<volume>", "volume name or id (vol_…)")
    .option("--field <name>", "only this field (repeatable, or comma-separated)", collect)
    .addHelpText(
      "after",
      `
Examples:
  $ cairn volume get team-data
  $ cairn volume get team-data --field sizeBytes --field usedBytes
  $ cairn volume get vol_3k9x0c2m7q4v8b1n5t6z --json | jq .status`,
    )
    .action(async (ref: string, options: { field?: string[] }, command: Command) => {
      const fields = parseFields(options.field);
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      if (ctx.json) printJson(pickFields(volume.info, fields));
      else process.stdout.write(volumeDetails(volume.info, fields, ctx.out));
    });
}
