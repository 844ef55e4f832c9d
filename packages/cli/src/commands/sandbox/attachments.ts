import { Command } from "commander";
import { contextOf } from "../../context.js";
import { attachmentTable, printJson } from "../../output.js";

export function attachmentsCommand(): Command {
  return new Command("attachments")
    .description("List a sandbox's volume attachments and their states")
    .argument("<id>", "sandbox id (sbx_…)")
    .addHelpText(
      "after",
      `
States: pending → mounted → (suspended ⇄ mounted while hibernated) → released, or failed.

Examples:
  $ cairn sandbox attachments "$id"
  $ cairn sandbox attachments "$id" --json | jq -r '.[] | "\\(.mountPath) \\(.state)"'`,
    )
    .action(async (id: string, _options: unknown, command: Command) => {
      const ctx = contextOf(command);
      const sandbox = await ctx.cairn.sandboxes.get(id, { signal: ctx.signal });
      const items = await sandbox.attachments({ signal: ctx.signal });
      if (ctx.json) printJson(items);
      else if (items.length === 0) process.stderr.write(ctx.err.dim(`No volumes attached to ${id}.\n`));
      else process.stdout.write(attachmentTable(items, ctx.out));
    });
}
