import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";

export function rmCommand(): Command {
  return new Command("rm")
    .alias("remove")
    .description("Remove an image (or one of its names); refused while a sandbox runs it")
    .argument("<ref>", "a reference (node:20) or a digest (sha256:…)")
    .addHelpText("after", "\nLayers no other image uses are deleted.\n\nExamples:\n  $ cairn image rm node:20")
    .action(async (ref: string, _options: unknown, command: Command) => {
      const ctx = contextOf(command);
      const r = await ctx.cairn.images.remove(ref, { signal: ctx.signal });
      if (ctx.json) printJson(r);
      else {
        for (const name of r.untagged) process.stdout.write(`untagged ${name}\n`);
        if (r.deleted) process.stdout.write(`deleted ${r.deleted}\n`);
      }
    });
}
