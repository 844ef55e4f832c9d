import { Command } from "commander";
import { contextOf } from "../../context.js";
import { UsageError } from "../../errors.js";
import { printJson } from "../../output.js";

interface SearchOptions {
  glob?: string;
  path?: string;
  regex?: boolean;
  ignoreCase?: boolean;
  limit?: string;
}

export function searchCommand(): Command {
  return new Command("search")
    .description("Search a volume: file names by glob, contents by text or regex (with line numbers)")
    .argument("<volume>", "volume name or id")
    .argument("[query]", "text to find in files (a PCRE regex with --regex); without it, --glob searches names")
    .option("--glob <glob>", "only paths matching this: *.ts matches names, src/**/*.ts relative paths")
    .option("--path <dir>", "search below this directory (default /)")
    .option("-E, --regex", "the query is a regular expression")
    .option("-i, --ignore-case", "ignore case")
    .option("--limit <n>", "at most n results (default 100, at most 10000)")
    .addHelpText(
      "after",
      `
Prints path:line:text per match (names only for a --glob search); JSON when piped or --json.
Binary files, symlinks, devices and fifos are skipped. When there are more results than --limit,
a note goes to stderr.

Examples:
  $ cairn volume search team-data TODO --glob '*.ts' --path /src
  $ cairn volume search team-data 'def \\w+\\(' --regex --glob '*.py'
  $ cairn volume search team-data --glob '**/*.log'`,
    )
    .action(async (ref: string, query: string | undefined, options: SearchOptions, command: Command) => {
      if (query === undefined && options.glob === undefined) throw new UsageError("Give a query to search contents, or --glob to search names");
      const limit = options.limit === undefined ? undefined : Number(options.limit);
      if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 10000)) throw new UsageError(`Invalid --limit "${options.limit}": give 1-10000`);
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      const r = await volume.files.search({
        signal: ctx.signal,
        ...(query !== undefined ? { query } : {}),
        ...(options.glob !== undefined ? { glob: options.glob } : {}),
        ...(options.path !== undefined ? { path: options.path } : {}),
        ...(options.regex ? { regex: true } : {}),
        ...(options.ignoreCase ? { ignoreCase: true } : {}),
        ...(limit !== undefined ? { limit } : {}),
      });
      if (ctx.json) printJson(r);
      else {
        for (const m of r.matches) {
          process.stdout.write(m.line === undefined ? `${m.path}${m.type === "directory" ? "/" : ""}\n` : `${ctx.out.bold(m.path)}:${ctx.out.green(String(m.line))}:${m.text}\n`);
        }
      }
      if (r.truncated) process.stderr.write(ctx.err.yellow(`more than ${r.matches.length} results; raise --limit or narrow the search\n`));
    });
}
