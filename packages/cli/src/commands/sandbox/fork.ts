import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printSandbox } from "./create.js";

export function forkCommand(): Command {
  return new Command("fork")
    .description("Start a new sandbox with a copy of a sandbox's filesystem and volumes")
    .argument("<id>", "sandbox id to copy (running or hibernated)")
    .option("--keep-volumes", "keep the volumes forked for the copy when it is killed (default: they go with it)")
    .addHelpText(
      "after",
      `
ReadWriteMany and ReadOnlyMany volumes are shared with the copy. A ReadWriteOnce volume mounted
read-write is forked into a new volume from a checkpoint (labelled cairn.dev/fork-of), so the two
sandboxes no longer see each other's writes there; it is deleted when the copy is killed unless
--keep-volumes. One mounted read-only is shared as a read-only view of a checkpoint taken now.
Like create, prints the new id alone when stdout is not a terminal.

Examples:
  $ copy=$(cairn sandbox fork "$id")
  $ copy=$(cairn sandbox fork "$id" --keep-volumes)`,
    )
    .action(async (id: string, options: { keepVolumes?: boolean }, command: Command) => {
      const ctx = contextOf(command);
      const sandbox = await ctx.cairn.sandboxes.get(id, { signal: ctx.signal });
      const copy = await sandbox.fork({ keepVolumes: options.keepVolumes === true, signal: ctx.signal });
      printSandbox(copy.info, ctx);
    });
}
