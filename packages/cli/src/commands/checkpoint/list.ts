import { Command } from "commander";
import { contextOf } from "../../context.js";
import { checkpointTable, printJson } from "../../output.js";

export function listCommand(): Command {
  return new Command("list")
    .alias("ls")
    .description("List a volume's checkpoints, oldest first: name, id, age, size, allocated and exclusive space")
    .argument("<volume>", "volume name or id")
    .addHelpText(
      "after",
      `
ALLOCATED is the space a checkpoint references (shared with the volume or other checkpoints);
EXCLUSIVE is what only it holds, i.e. what deleting it frees.

Examples:
  $ cairn checkpoint list team-data
  $ cairn checkpoint list team-data --json | jq -r '.[].name'`,
    )
    .action(async (ref: string, _options: unknown, command: Command) => {
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      const items = await volume.checkpoints.list({ signal: ctx.signal });
      if (ctx.json) printJson(items);
      else if (items.length === 0) {
        process.stderr.write(ctx.err.dim(`No checkpoints of ${volume.name} yet. Take one: cairn checkpoint create ${volume.name} --name <name>\n`));
      } else process.stdout.write(checkpointTable(items, ctx.out));
    });
}
