import { Command } from "commander";
import { formatSize } from "@cairn/protocol";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";

export function restoreCommand(): Command {
  return new Command("restore")
    .description("Restore a volume in place to one of its checkpoints (atomic; later changes are lost)")
    .argument("<volume>", "volume name or id")
    .argument("<checkpoint>", "checkpoint name or id")
    .option("--detach", "first detach the volume from sandboxes that have it attached read-write")
    .addHelpText(
      "after",
      `
The volume becomes exactly the checkpoint, size included, or stays untouched if the restore fails.
It is refused (exit 4, VOLUME_BUSY) while a sandbox has the volume attached read-write, unless
--detach is given: those attachments then end released. The checkpoint itself is kept.

Examples:
  $ cairn checkpoint restore team-data before-migration
  $ cairn checkpoint restore team-data nightly-2026-11-22 --detach`,
    )
    .action(async (ref: string, checkpointRef: string, options: { detach?: boolean }, command: Command) => {
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      const restored = await volume.checkpoints.restore(checkpointRef, { detach: options.detach === true, signal: ctx.signal });
      if (ctx.json) printJson(restored);
      else process.stdout.write(`Restored ${ctx.out.bold(restored.name)} to checkpoint ${checkpointRef} (${formatSize(restored.sizeBytes)})\n`);
    });
}
