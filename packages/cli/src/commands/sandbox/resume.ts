import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";

export function resumeCommand(): Command {
  return new Command("resume")
    .description("Start a hibernated sandbox again and remount its volumes")
    .argument("<id>", "sandbox id (sbx_…)")
    .addHelpText(
      "after",
      `
Examples:
  $ cairn sandbox resume "$id"`,
    )
    .action(async (id: string, _options: unknown, command: Command) => {
      const ctx = contextOf(command);
      const sandbox = await ctx.cairn.sandboxes.get(id, { signal: ctx.signal });
      await sandbox.resume({ signal: ctx.signal });
      if (ctx.json) printJson(sandbox.info);
      else process.stdout.write(`${ctx.out.bold(sandbox.id)} is ${sandbox.state}\n`);
    });
}
