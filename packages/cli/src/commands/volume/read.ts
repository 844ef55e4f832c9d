import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { Command } from "commander";
import { parseRange } from "../../args.js";
import { contextOf } from "../../context.js";

export function readCommand(): Command {
  return new Command("read")
    .description("Print a file of a volume to stdout (streamed; binary-safe)")
    .argument("<volume>", "volume name or id")
    .argument("<path>", "path inside the volume, e.g. /hello.txt")
    .option("--range <start-end>", "only these bytes, end inclusive (e.g. 0-1023), or start- for the rest")
    .addHelpText(
      "after",
      `
Examples:
  $ cairn volume read team-data /hello.txt
  $ cairn volume read team-data /data/model.bin > model.bin
  $ cairn volume read team-data /logs/app.log --range 1048576- | less`,
    )
    .action(async (ref: string, path: string, options: { range?: string }, command: Command) => {
      const range = options.range === undefined ? undefined : parseRange(options.range);
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      const body = await volume.files.read(path, range ? { range, signal: ctx.signal } : { signal: ctx.signal });
      try {
        await pipeline(Readable.fromWeb(body as WebReadableStream<Uint8Array>), process.stdout, { end: false });
      } catch (err) {
        // The reader went away (`| head`): what it wanted it got; stop quietly, like cat.
        if ((err as NodeJS.ErrnoException).code === "EPIPE") return;
        throw err;
      }
    });
}
