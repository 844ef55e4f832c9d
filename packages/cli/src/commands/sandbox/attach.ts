import { Command } from "commander";
import { collect, parseMount } from "../../args.js";
import { contextOf } from "../../context.js";
import { UsageError } from "../../errors.js";
import { printJson } from "../../output.js";
import { VOLUME_OPTION_HELP } from "./create.js";

export function attachCommand(): Command {
  return new Command("attach")
    .description("Hot-plug a volume into a running sandbox (its processes keep running)")
    .argument("<id>", "sandbox id (sbx_…)")
    .option("--volume <spec>", VOLUME_OPTION_HELP, collect)
    .addHelpText(
      "after",
      `
Examples:
  $ cairn sandbox attach "$id" --volume ref=cache,mount=/cache
  $ cairn sandbox attach "$id" --volume ref=team-data,mount=/old,checkpoint=before-migration`,
    )
    .action(async (id: string, options: { volume?: string[] }, command: Command) => {
      // One mount per call: a second one failing would leave the first attached and the caller unsure.
      if (options.volume?.length !== 1) {
        throw new UsageError("Give exactly one --volume to attach", `e.g. cairn sandbox attach ${id} --volume ref=cache,mount=/cache`);
      }
      const mount = parseMount(options.volume[0]!);
      const ctx = contextOf(command);
      const sandbox = await ctx.cairn.sandboxes.get(id, { signal: ctx.signal });
      const attachment = await sandbox.attach(mount, { signal: ctx.signal });
      if (ctx.json) printJson(attachment);
      else process.stdout.write(`Mounted ${ctx.out.bold(attachment.volumeName)} at ${attachment.mountPath} (${attachment.mode}) in ${sandbox.id}\n`);
    });
}
