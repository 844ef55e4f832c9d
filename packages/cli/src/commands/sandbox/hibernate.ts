import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";

export function hibernateCommand(): Command {
  return new Command("hibernate")
    .description("Stop a sandbox's processes but keep its filesystem and volume claims; resume later")
    .argument("<id>", "sandbox id (sbx_…)")
    .addHelpText(
      "after",
      `
The attachments become suspended: the volumes are unmounted, yet a ReadWriteOnce volume stays
claimed by this sandbox until it is resumed or killed.

Examples:
  $ cairn sandbox hibernate "$id"
  $ cairn sandbox resume "$id"`,
    )
    .action(async (id: string, _options: unknown, command: Command) => {
      const ctx = contextOf(command);
      const sandbox = await ctx.cairn.sandboxes.get(id, { signal: ctx.signal });
      await sandbox.hibernate({ signal: ctx.signal });
      if (ctx.json) printJson(sandbox.info);
      else process.stdout.write(`${ctx.out.bold(sandbox.id)} is ${sandbox.state}\n`);
    });
}
