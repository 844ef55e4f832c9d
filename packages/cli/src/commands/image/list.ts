import { Command } from "commander";
import { formatSize } from "@cairn/protocol";
import type { Image } from "@cairn/sdk";
import { contextOf } from "../../context.js";
import { formatAge, printJson, renderDetails, renderTable, type Style } from "../../output.js";

const short = (digest: string) => digest.replace(/^sha256:/, "").slice(0, 12);

export function imageDetails(i: Image, style: Style): string {
  return renderDetails(
    [
      ["NAMES:", style.bold(i.refs.join(", ") || "-")],
      ["DIGEST:", i.digest],
      ["PLATFORM:", i.platform],
      ["LAYERS:", String(i.layers)],
      ["SIZE:", formatSize(i.sizeBytes)],
      ["USER:", i.config.user || "root"],
      ["WORKDIR:", i.config.workingDir || "/"],
      ["CMD:", [...(i.config.entrypoint ?? []), ...(i.config.cmd ?? [])].join(" ") || "-"],
      ["PORTS:", i.config.exposedPorts.join(", ") || "-"],
    ],
    style,
  );
}

export function listCommand(): Command {
  return new Command("list")
    .alias("ls")
    .description("List the images on the cairnd host, newest first")
    .addHelpText("after", "\nExamples:\n  $ cairn image list\n  $ cairn image list --json | jq -r '.[].refs[]'")
    .action(async (_options: unknown, command: Command) => {
      const ctx = contextOf(command);
      const items = await ctx.cairn.images.list({ signal: ctx.signal });
      if (ctx.json) printJson(items);
      else if (items.length === 0) process.stderr.write(ctx.err.dim("No images yet. Pull one: cairn image pull <ref>\n"));
      else {
        process.stdout.write(
          renderTable(
            ["NAME", "DIGEST", "LAYERS", "SIZE", "PULLED"],
            items.map((i) => [i.refs.join(", ") || "-", short(i.digest), String(i.layers), formatSize(i.sizeBytes), formatAge(i.pulledAt)]),
            { style: ctx.out },
          ),
        );
      }
    });
}
