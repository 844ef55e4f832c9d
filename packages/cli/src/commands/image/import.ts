import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";
import { counted, progress } from "../../progress.js";
import { imageDetails } from "./list.js";

export function importCommand(): Command {
  return new Command("import")
    .description("Import images from an archive: docker save output, or an OCI image layout as tar or tar.gz")
    .argument("<file>", "the archive (- reads stdin)")
    .option("--name <ref>", "name the image (an archive holding one image; default: the archive's own names)")
    .addHelpText("after", "\nExamples:\n  $ docker save tool:1.2 -o tool.tar && cairn image import ./tool.tar\n  $ cairn image import ./layout.tar --name team/tool:1.2")
    .action(async (file: string, options: { name?: string }, command: Command) => {
      const ctx = contextOf(command);
      const size = file === "-" ? undefined : (await stat(file)).size;
      const bar = progress(`uploading ${file}`, size);
      let items;
      try {
        const source = file === "-" ? process.stdin : createReadStream(file, { highWaterMark: 1024 * 1024 });
        items = await ctx.cairn.images.import(counted(source as AsyncIterable<Uint8Array>, bar), { ...(options.name ? { name: options.name } : {}), signal: ctx.signal });
      } finally {
        bar.done();
      }
      if (ctx.json) printJson(items);
      else for (const i of items) process.stdout.write(imageDetails(i, ctx.out));
    });
}
