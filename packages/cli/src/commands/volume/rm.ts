import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";

export function rmCommand(): Command {
  // Not `rm`: that is `delete`'s alias (the whole volume). A missing path must never delete a volume.
  return new Command("remove")
    .description("Remove files, symlinks (not their targets) or directories from a volume (`delete` deletes the volume)")
    .argument("<volume>", "volume name or id")
    .argument("<paths...>", "paths inside the volume")
    .option("-r, --recursive", "remove directories and everything in them")
    .option("--if-match <etag>", "remove the file only if its ETag is still this (compare-and-swap)")
    .addHelpText(
      "after",
      `
A recursive remove takes the tree out of sight in one step: nobody sees it half removed.

Examples:
  $ cairn volume remove team-data /tmp/old.log
  $ cairn volume remove team-data /cache -r`,
    )
    .action(async (ref: string, paths: string[], options: { recursive?: boolean; ifMatch?: string }, command: Command) => {
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      for (const path of paths) {
        await volume.files.remove(path, {
          signal: ctx.signal,
          ...(options.recursive ? { recursive: true } : {}),
          ...(options.ifMatch !== undefined ? { ifMatch: options.ifMatch } : {}),
        });
      }
      if (ctx.jsonRequested) printJson({ removed: paths });
    });
}
