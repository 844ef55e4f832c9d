import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";

export function killCommand(): Command {
  return new Command("kill")
    .alias("rm")
    .description("Kill a sandbox: its processes and own filesystem go, its volumes are released")
    .argument("<id>", "sandbox id (sbx_…)")
    .addHelpText(
      "after",
      `
The volumes themselves and their data stay; only the sandbox's claim on them ends.

Examples:
  $ cairn sandbox kill "$id"
  $ cairn sandbox list --state running --json | jq -r '.[].id' | xargs -n1 cairn sandbox kill`,
    )
    .action(async (id: string, _options: unknown, command: Command) => {
      const ctx = contextOf(command);
      const sandbox = await ctx.cairn.sandboxes.get(id, { signal: ctx.signal });
      await sandbox.kill({ signal: ctx.signal });
      if (ctx.jsonRequested) printJson(sandbox.info);
      else if (process.stderr.isTTY) process.stderr.write(`${ctx.err.green("✓")} killed sandbox ${sandbox.id}\n`);
    });
}
