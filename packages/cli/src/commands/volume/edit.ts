import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";

interface EditOptions {
  old: string;
  new: string;
  all?: boolean;
  ifMatch?: string;
}

export function editCommand(): Command {
  return new Command("edit")
    .description("Replace one exact occurrence of a string in a file of a volume (or every one, with --all)")
    .argument("<volume>", "volume name or id")
    .argument("<path>", "file inside the volume")
    .requiredOption("--old <text>", "the text to replace; it must occur exactly once unless --all")
    .requiredOption("--new <text>", "what to put instead")
    .option("--all", "replace every occurrence")
    .option("--if-match <etag>", "edit only if the file's ETag is still this")
    .addHelpText(
      "after",
      `
Absent text, or text that occurs more than once without --all, is refused (exit 4) and the file
stays as it was. The change is atomic, and refused if the file changed meanwhile.

Examples:
  $ cairn volume edit team-data /app/config.toml --old 'port = 8080' --new 'port = 9090'
  $ cairn volume edit team-data /README.md --old v1 --new v2 --all`,
    )
    .action(async (ref: string, path: string, options: EditOptions, command: Command) => {
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      const r = await volume.files.edit(path, options.old, options.new, {
        signal: ctx.signal,
        ...(options.all ? { replaceAll: true } : {}),
        ...(options.ifMatch !== undefined ? { ifMatch: options.ifMatch } : {}),
      });
      if (ctx.jsonRequested) printJson(r);
      else if (process.stderr.isTTY) process.stderr.write(`${ctx.err.green("✓")} ${r.replacements} replacement${r.replacements === 1 ? "" : "s"} in ${r.path}\n`);
    });
}
