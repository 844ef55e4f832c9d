import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import { Command } from "commander";
import { formatSize } from "@cairn/protocol";
import { contextOf } from "../../context.js";
import { UsageError } from "../../errors.js";
import { printJson } from "../../output.js";

export function writeCommand(): Command {
  return new Command("write")
    .description("Write a file into a volume from stdin (or --from <file>), replacing it atomically")
    .argument("<volume>", "volume name or id")
    .argument("<path>", "path inside the volume, e.g. /hello.txt (parent directories are created)")
    .option("--from <file>", "read this local file instead of stdin ('-' is stdin)")
    .addHelpText(
      "after",
      `
The input is streamed, never held in memory: any size that fits the volume works.
Quiet on success unless stderr is a terminal (or --json prints the result).

Examples:
  $ printf "persistent\\n" | cairn volume write team-data /hello.txt
  $ cairn volume write team-data /data/model.bin --from ./model.bin
  $ tar -c src | cairn volume write team-data /backup/src.tar`,
    )
    .action(async (ref: string, path: string, options: { from?: string }, command: Command) => {
      const ctx = contextOf(command);
      const fromStdin = options.from === undefined || options.from === "-";
      // Open the file before any request, so a typo in --from fails fast with the local error.
      const input: Readable = fromStdin ? process.stdin : await openLocal(options.from!);
      try {
        if (fromStdin && process.stdin.isTTY) process.stderr.write(ctx.err.dim("reading stdin until Ctrl-D …\n"));
        const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
        // A Node Readable is an AsyncIterable<Buffer>: the SDK pulls chunks as the upload drains,
        // so memory stays flat whatever the input size.
        const result = await volume.files.write(path, input, { signal: ctx.signal });
        if (ctx.jsonRequested) printJson(result);
        else if (process.stderr.isTTY) {
          process.stderr.write(`${ctx.err.green("✓")} wrote ${formatSize(result.size)} to ${volume.name}:${result.path}\n`);
        }
      } finally {
        // On an early failure (unknown volume, quota) nobody consumed the input: release it, or an
        // open stdin pipe would keep the process alive.
        input.destroy();
      }
    });
}

function openLocal(file: string): Promise<Readable> {
  return new Promise((resolve, reject) => {
    const stream = createReadStream(file);
    stream.once("open", () => resolve(stream));
    // A local file that cannot be read is a bad argument, not a failure of Cairn.
    stream.once("error", (err) => reject(new UsageError(`Cannot read --from ${file}: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
  });
}
