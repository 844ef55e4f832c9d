import { Command } from "commander";
import { contextOf } from "../../context.js";

export function watchCommand(): Command {
  return new Command("watch")
    .description("Print changes in a volume as they happen (create, modify, delete, rename), until Ctrl-C")
    .argument("<volume>", "volume name or id")
    .argument("[path]", "only changes at or below this path (default /)")
    .option("--cursor <cursor>", "resume after this event (the cursor of the last one you saw)")
    .addHelpText(
      "after",
      `
Changes made through the API and inside sandboxes alike. One line per event: "type path" on a
terminal, one JSON object per line when piped (with its cursor). A dropped connection is resumed
from the last cursor; "reset" means events were missed (too old, or cairnd restarted): list again.

Examples:
  $ cairn volume watch team-data /inbox
  $ cairn volume watch team-data --json | jq -c 'select(.type == "create")'`,
    )
    .action(async (ref: string, path: string | undefined, options: { cursor?: string }, command: Command) => {
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      try {
        for await (const m of volume.files.watch(path ?? "/", { signal: ctx.signal, ...(options.cursor ? { cursor: options.cursor } : {}) })) {
          if (ctx.json) process.stdout.write(`${JSON.stringify(m)}\n`);
          else if (m.type === "ready") process.stderr.write(ctx.err.dim(`watching ${volume.name}:${path ?? "/"} (Ctrl-C to stop)\n`));
          else if (m.type === "reset") process.stdout.write(`${ctx.out.yellow("reset")} events were missed (${m.reason}); list the volume again\n`);
          else if (m.type === "rename") process.stdout.write(`${m.type.padEnd(6)} ${m.oldPath} -> ${m.path}${m.isDir ? "/" : ""}\n`);
          else process.stdout.write(`${m.type.padEnd(6)} ${m.path}${m.isDir ? "/" : ""}\n`);
        }
      } catch (err) {
        if (ctx.signal.aborted) return; // Ctrl-C: the normal way to stop
        throw err;
      }
    });
}
