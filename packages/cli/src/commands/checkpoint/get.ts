import { Command } from "commander";
import { contextOf } from "../../context.js";
import { checkpointDetails, printJson } from "../../output.js";

export function getCommand(): Command {
  return new Command("get")
    .description("Show one checkpoint of a volume, by name or id")
    .argument("<volume>", "volume name or id")
    .argument("<checkpoint>", "checkpoint name or id (cp_…)")
    .addHelpText(
      "after",
      `
Examples:
  $ cairn checkpoint get team-data before-migration
  $ cairn checkpoint get team-data before-migration --json | jq .exclusiveBytes`,
    )
    .action(async (ref: string, checkpointRef: string, _options: unknown, command: Command) => {
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      const checkpoint = await volume.checkpoints.get(checkpointRef, { signal: ctx.signal });
      if (ctx.json) printJson(checkpoint);
      else process.stdout.write(checkpointDetails(checkpoint, ctx.out));
    });
}
