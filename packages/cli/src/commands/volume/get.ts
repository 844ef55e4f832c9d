import { Command } from "commander";
import { collect, parseFields } from "../../args.js";
import { contextOf } from "../../context.js";
import { pickFields, printJson, volumeDetails } from "../../output.js";
import { download } from "./download.js";

export function getCommand(): Command {
  return new Command("get")
    .description("Show one volume, by name or id; with a path, download that file or directory")
    .argument("<volume>", "volume name or id (vol_…)")
    .argument("[path]", "a file or directory in the volume to download")
    .argument("[dest]", "where to put it (default: its name in the current directory; - for stdout, files only)")
    .option("--field <name>", "only this field (repeatable, or comma-separated)", collect)
    .addHelpText(
      "after",
      `
Examples:
  $ cairn volume get team-data
  $ cairn volume get team-data --field sizeBytes --field usedBytes
  $ cairn volume get vol_3k9x0c2m7q4v8b1n5t6z --json | jq .status
  $ cairn volume get team-data /reports ./reports      # a directory, modes and mtimes kept
  $ cairn volume get team-data /data/model.bin -       # a file to stdout`,
    )
    .action(async (ref: string, path: string | undefined, dest: string | undefined, options: { field?: string[] }, command: Command) => {
      const ctx = contextOf(command);
      if (path !== undefined) return download(ctx, ref, path, dest);
      const fields = parseFields(options.field);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      if (ctx.json) printJson(pickFields(volume.info, fields));
      else process.stdout.write(volumeDetails(volume.info, fields, ctx.out));
    });
}
