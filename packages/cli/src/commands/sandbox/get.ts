import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printJson, sandboxDetails } from "../../output.js";

export function getCommand(): Command {
  return new Command("get")
    .description("Show one sandbox: state, limits and attachments")
    .argument("<id>", "sandbox id (sbx_…)")
    .addHelpText(
      "after",
      `
Examples:
  $ cairn sandbox get "$id"
  $ cairn sandbox get "$id" --json | jq .state`,
    )
    .action(async (id: string, _options: unknown, command: Command) => {
      const ctx = contextOf(command);
      const sandbox = await ctx.cairn.sandboxes.get(id, { signal: ctx.signal });
      if (ctx.json) printJson(sandbox.info);
      else process.stdout.write(sandboxDetails(sandbox.info, ctx.out));
    });
}
