import { Command, Option } from "commander";
import { SANDBOX_STATES } from "@cairn/protocol";
import { contextOf } from "../../context.js";
import { printJson, sandboxTable } from "../../output.js";

export function listCommand(): Command {
  return new Command("list")
    .alias("ls")
    .description("List sandboxes, newest first, with the volumes each one mounts")
    .addOption(new Option("--state <state>", "only sandboxes in this state").choices(SANDBOX_STATES))
    .addHelpText(
      "after",
      `
Examples:
  $ cairn sandbox list
  $ cairn sandbox list --state running --json | jq -r '.[].id'`,
    )
    .action(async (options: { state?: string }, command: Command) => {
      const ctx = contextOf(command);
      const items = await ctx.cairn.sandboxes.list({ ...(options.state !== undefined ? { state: options.state as (typeof SANDBOX_STATES)[number] } : {}), signal: ctx.signal });
      if (ctx.json) printJson(items);
      else if (items.length === 0) {
        process.stderr.write(ctx.err.dim(options.state ? "No sandboxes in that state.\n" : "No sandboxes yet. Start one: cairn sandbox create\n"));
      } else process.stdout.write(sandboxTable(items, ctx.out));
    });
}
