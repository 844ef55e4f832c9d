import { Command } from "commander";
import type { ListVolumesOptions, VolumeInfo } from "@cairn/sdk";
import { collect, parseFields, parseLabels, parseLimit } from "../../args.js";
import { contextOf } from "../../context.js";
import { pickFields, printJson, volumeTable } from "../../output.js";
import { UsageError } from "../../errors.js";
import { listFilesAction } from "./ls-files.js";

interface ListOptions {
  field?: string[];
  label?: string[];
  limit?: string;
  cursor?: string;
  recursive?: boolean;
  prefix?: string;
  deleted?: boolean;
}

export function listCommand(): Command {
  return new Command("list")
    .alias("ls")
    .description("List volumes, ordered by name (every page, unless --limit is given); with a volume, list its files")
    .argument("[volume]", "list the files of this volume instead")
    .argument("[path]", "directory in the volume (default /)")
    .option("-R, --recursive", "files: everything below the directory, depth first")
    .option("--prefix <prefix>", "files: only paths (relative to the directory) starting with this")
    .option("--field <name>", "only these fields/columns (repeatable, or comma-separated)", collect)
    .option("--label <key=value>", "only volumes with this label (repeatable: all must match)", collect)
    .option("--limit <n>", "one page of at most n volumes; the next page's cursor goes to stderr")
    .option("--cursor <cursor>", "start after this cursor (from a previous --limit page)")
    .option("--deleted", "deleted volumes whose checkpoints were kept (volume delete --keep-checkpoints)")
    .addHelpText(
      "after",
      `
Examples:
  $ cairn volume list
  $ cairn volume list --field name --field sizeBytes
  $ cairn volume list --label team=ml --json | jq -r '.[].name'
  $ cairn volume ls team-data /data -R`,
    )
    .action(async (ref: string | undefined, path: string | undefined, options: ListOptions, command: Command) => {
      const ctx = contextOf(command);
      if (ref !== undefined) {
        if (options.field !== undefined || options.label !== undefined) throw new UsageError("--field and --label apply to volumes, not to files");
        return listFilesAction(ctx, ref, path, options);
      }
      if (options.recursive || options.prefix !== undefined) throw new UsageError("-R and --prefix list files: give a volume, e.g. cairn volume ls team-data /data -R");
      const fields = parseFields(options.field);
      const query: ListVolumesOptions = { signal: ctx.signal };
      if (options.label !== undefined) query.labels = parseLabels(options.label);
      if (options.deleted) query.deleted = true;
      // Ask the server for just these fields: less to fetch, and usedBytes (a statfs per volume) is skipped unless asked for.
      if (fields) query.fields = fields;

      let items: Partial<VolumeInfo>[];
      let nextCursor: string | null = null;
      if (options.limit !== undefined || options.cursor !== undefined) {
        if (options.limit !== undefined) query.limit = parseLimit(options.limit);
        if (options.cursor !== undefined) query.cursor = options.cursor;
        ({ items, nextCursor } = await ctx.cairn.volumes.list(query));
      } else {
        items = [];
        for await (const v of ctx.cairn.volumes.iterate(query)) items.push(v);
      }
      items = items.map((v) => pickFields(v, fields));

      if (ctx.json) printJson(items);
      else if (items.length === 0 && nextCursor === null) {
        process.stderr.write(ctx.err.dim(options.label ? "No volumes match.\n" : "No volumes yet. Create one: cairn volume create <name>\n"));
      } else process.stdout.write(volumeTable(items, fields, ctx.out));
      if (nextCursor !== null) {
        // stderr, so the JSON on stdout stays one array whatever the page size.
        process.stderr.write(`next page: --cursor ${nextCursor}\n`);
      }
    });
}
