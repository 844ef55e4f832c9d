import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";

export function deleteCommand(): Command {
  return new Command("delete")
    .alias("rm")
    .description("Delete a volume and all its data (there is no undo)")
    .argument("<volume>", "volume name or id")
    .option("--keep-checkpoints", "keep the volume's checkpoints, restorable as new volumes (volume create --from-checkpoint <volume id>:<checkpoint>)")
    .addHelpText(
      "after",
      `
Examples:
  $ cairn volume delete team-data
  $ cairn volume delete team-data --keep-checkpoints      # then: cairn volume list --deleted
  $ cairn volume list --label team=old --json | jq -r '.[].name' | xargs -n1 cairn volume delete`,
    )
    .action(async (ref: string, options: { keepCheckpoints?: boolean }, command: Command) => {
      const ctx = contextOf(command);
      await ctx.cairn.volumes.delete(ref, { signal: ctx.signal, ...(options.keepCheckpoints ? { keepCheckpoints: true } : {}) });
      if (ctx.jsonRequested) printJson({ deleted: ref });
      else if (process.stderr.isTTY) process.stderr.write(`${ctx.err.green("✓")} deleted volume ${ref}\n`);
    });
}
