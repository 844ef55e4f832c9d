import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";

export function mvCommand(): Command {
  return new Command("mv")
    .description("Move or rename a file, symlink or directory inside a volume (atomic)")
    .argument("<volume>", "volume name or id")
    .argument("<from>", "current path")
    .argument("<to>", "new path (missing parent directories are created)")
    .option("-f, --overwrite", "replace what is at <to> (a file, or an empty directory)")
    .addHelpText(
      "after",
      `
Without --overwrite an existing <to> is refused (exit 4), and nothing moves.

Examples:
  $ cairn volume mv team-data /inbox/report.csv /reports/2026-11.csv
  $ cairn volume mv team-data /build /releases/v2 --overwrite`,
    )
    .action(async (ref: string, from: string, to: string, options: { overwrite?: boolean }, command: Command) => {
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      const e = await volume.files.move(from, to, { overwrite: options.overwrite === true, signal: ctx.signal });
      if (ctx.jsonRequested) printJson(e);
    });
}
