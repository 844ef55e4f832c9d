import { Command } from "commander";
import { collect, parseLabels, parsePositiveInt } from "../../args.js";
import { contextOf } from "../../context.js";
import { checkpointDetails, printJson } from "../../output.js";

interface CreateOptions {
  name?: string;
  label?: string[];
  keep?: string;
}

export function createCommand(): Command {
  return new Command("create")
    .description("Take a checkpoint of a volume: instant, copy-on-write, no space used until blocks diverge")
    .argument("<volume>", "volume name or id")
    .option("--name <name>", "checkpoint name, unique per volume (default cp-<time>)")
    .option("--label <key=value>", "label the checkpoint (repeatable)", collect)
    .option("--keep <n>", "then delete the oldest checkpoints so that at most n remain")
    .addHelpText(
      "after",
      `
Writers pause for milliseconds while the filesystem is frozen for the clone; the checkpoint is
crash-consistent.

Examples:
  $ cairn checkpoint create team-data --name before-migration
  $ cairn checkpoint create team-data --name nightly-2026-11-22 --label kind=nightly --keep 7`,
    )
    .action(async (ref: string, options: CreateOptions, command: Command) => {
      const request: { name?: string; labels?: Record<string, string>; keep?: number } = {};
      if (options.name !== undefined) request.name = options.name;
      if (options.label !== undefined) request.labels = parseLabels(options.label);
      if (options.keep !== undefined) request.keep = parsePositiveInt(options.keep, "--keep");
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      const checkpoint = await volume.checkpoints.create({ ...request, signal: ctx.signal });
      if (ctx.json) printJson(checkpoint);
      else process.stdout.write(checkpointDetails(checkpoint, ctx.out));
    });
}
