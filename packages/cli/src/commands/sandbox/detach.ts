import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";

export function detachCommand(): Command {
  return new Command("detach")
    .description("Unmount a volume from a sandbox, by its mount path")
    .argument("<id>", "sandbox id (sbx_…)")
    .requiredOption("--mount <path>", "where the volume is mounted in the sandbox, e.g. /cache")
    .option("--force", "detach even if files under the mount are in use: the processes using them are killed")
    .addHelpText(
      "after",
      `
A mount with open files or a process inside it is refused (exit 4, VOLUME_BUSY) unless --force.
The attachment ends released and the volume is free for other sandboxes.

Examples:
  $ cairn sandbox detach "$id" --mount /cache
  $ cairn sandbox detach "$id" --mount /cache --force`,
    )
    .action(async (id: string, options: { mount: string; force?: boolean }, command: Command) => {
      const ctx = contextOf(command);
      const sandbox = await ctx.cairn.sandboxes.get(id, { signal: ctx.signal });
      const attachment = await sandbox.detach(options.mount, { force: options.force === true, signal: ctx.signal });
      if (ctx.json) printJson(attachment);
      else process.stdout.write(`Detached ${ctx.out.bold(attachment.volumeName)} from ${attachment.mountPath} in ${sandbox.id}\n`);
    });
}
