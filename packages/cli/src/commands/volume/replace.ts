import { Command } from "commander";
import { contextOf } from "../../context.js";
import { UsageError } from "../../errors.js";
import { printJson } from "../../output.js";

interface ReplaceOptions {
  glob?: string;
  path?: string;
  regex?: boolean;
  ignoreCase?: boolean;
  dryRun?: boolean;
  maxFiles?: string;
}

export function replaceCommand(): Command {
  return new Command("replace")
    .description("Replace text across the files of a volume, all or nothing (--dry-run shows the changes)")
    .argument("<volume>", "volume name or id")
    .argument("<search>", "text to replace (a JavaScript regex with --regex)")
    .argument("<replacement>", "what to put instead; with --regex, $1 or $<name> insert groups")
    .option("--glob <glob>", "only files matching this: *.md matches names, docs/**/*.md relative paths")
    .option("--path <dir>", "only below this directory (or just this file); default /")
    .option("-E, --regex", "search is a regular expression")
    .option("-i, --ignore-case", "ignore case")
    .option("-n, --dry-run", "show the changed lines; change nothing")
    .option("--max-files <n>", "refuse if more files would change (default 1000)")
    .addHelpText(
      "after",
      `
Every changed file is replaced atomically, and all of them together: a failure (a file changed
meanwhile, a full volume) leaves every file as it was. UTF-8 text files only; binary files are skipped.

Examples:
  $ cairn volume replace team-data 'Cairn v1' 'Cairn v2' --glob '*.md' --dry-run
  $ cairn volume replace team-data 'version = "(\\d+)"' 'version = "$1-rc"' --regex --path /pkg`,
    )
    .action(async (ref: string, search: string, replacement: string, options: ReplaceOptions, command: Command) => {
      const maxFiles = options.maxFiles === undefined ? undefined : Number(options.maxFiles);
      if (maxFiles !== undefined && (!Number.isInteger(maxFiles) || maxFiles < 1 || maxFiles > 10000)) {
        throw new UsageError(`Invalid --max-files "${options.maxFiles}": give 1-10000`);
      }
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      const r = await volume.files.replace({
        search,
        replacement,
        signal: ctx.signal,
        ...(options.glob !== undefined ? { glob: options.glob } : {}),
        ...(options.path !== undefined ? { path: options.path } : {}),
        ...(options.regex ? { regex: true } : {}),
        ...(options.ignoreCase ? { ignoreCase: true } : {}),
        ...(options.dryRun ? { dryRun: true } : {}),
        ...(maxFiles !== undefined ? { maxFiles } : {}),
      });
      if (ctx.json) return printJson(r);
      for (const f of r.files) {
        process.stdout.write(`${ctx.out.bold(f.path)}: ${f.replacements} replacement${f.replacements === 1 ? "" : "s"}\n`);
        for (const c of f.changes ?? []) {
          process.stdout.write(`${ctx.out.dim(String(c.line).padStart(6))} ${ctx.out.red(`- ${c.before}`)}\n${" ".repeat(6)} ${ctx.out.green(`+ ${c.after}`)}\n`);
        }
      }
      const verb = r.dryRun ? "would change" : "changed";
      process.stderr.write(ctx.err.dim(`${verb} ${r.filesChanged} file${r.filesChanged === 1 ? "" : "s"}, ${r.replacements} replacement${r.replacements === 1 ? "" : "s"}\n`));
    });
}
