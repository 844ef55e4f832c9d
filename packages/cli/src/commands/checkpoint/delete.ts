import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";

export function deleteCommand(): Command {
  return new Command("delete")
    .alias("rm")
    .description("Delete a checkpoint (the volume and its other checkpoints are untouched)")
    .argument("<volume>", "volume name or id")
    .argument("<checkpoint>", "checkpoint name or id")
    .addHelpText(
      "after",
      `
Frees the checkpoint's exclusive space (see \`cairn checkpoint list\`). Volumes forked from it
with --from-checkpoint are independent and stay.

Examples:
  $ cairn checkpoint delete team-data before-migration`,
    )
    .action(async (ref: string, checkpointRef: string, _options: unknown, command: Command) => {
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      await volume.checkpoints.delete(checkpointRef, { signal: ctx.signal });
      if (ctx.jsonRequested) printJson({ deleted: checkpointRef, volume: volume.name });
      else if (process.stderr.isTTY) process.stderr.write(`${ctx.err.green("✓")} deleted checkpoint ${volume.name}:${checkpointRef}\n`);
    });
}
