import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printSandbox } from "./create.js";

export function forkCommand(): Command {
  return new Command("fork")
    .description("Start a new sandbox with a copy of a sandbox's filesystem and volumes")
    .argument("<id>", "sandbox id to copy (running or hibernated)")
    .addHelpText(
      "after",
      `
ReadWriteMany volumes are shared with the copy; ReadWriteOnce volumes are forked into new
volumes from a checkpoint, so the two sandboxes no longer see each other's writes there.
Like create, prints the new id alone when stdout is not a terminal.

Examples:
  $ copy=$(cairn sandbox fork "$id")`,
    )
    .action(async (id: string, _options: unknown, command: Command) => {
      const ctx = contextOf(command);
      const sandbox = await ctx.cairn.sandboxes.get(id, { signal: ctx.signal });
      const copy = await sandbox.fork({ signal: ctx.signal });
      printSandbox(copy.info, ctx);
    });
}
