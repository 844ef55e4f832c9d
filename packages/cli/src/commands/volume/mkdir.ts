import { Command } from "commander";
import { contextOf } from "../../context.js";
import { UsageError } from "../../errors.js";
import { printJson } from "../../output.js";

export function parseMode(text: string): number {
  if (!/^0?[0-7]{3,4}$/.test(text)) throw new UsageError(`Invalid --mode "${text}": give octal permission bits, e.g. 755 or 0750`);
  return parseInt(text, 8);
}

export function mkdirCommand(): Command {
  return new Command("mkdir")
    .description("Create a directory in a volume, with any missing parents (like mkdir -p)")
    .argument("<volume>", "volume name or id")
    .argument("<paths...>", "directories to create")
    .option("--mode <octal>", "permission bits of the new directories, e.g. 750")
    .addHelpText(
      "after",
      `
An existing directory is fine; a file in the way is refused (exit 4).

Examples:
  $ cairn volume mkdir team-data /data/2026/11
  $ cairn volume mkdir team-data /private --mode 700`,
    )
    .action(async (ref: string, paths: string[], options: { mode?: string }, command: Command) => {
      const ctx = contextOf(command);
      const mode = options.mode === undefined ? undefined : parseMode(options.mode);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      const made = [];
      for (const path of paths) made.push(await volume.files.mkdir(path, { signal: ctx.signal, ...(mode !== undefined ? { mode } : {}) }));
      if (ctx.jsonRequested) printJson(made.length === 1 ? made[0] : made);
    });
}
