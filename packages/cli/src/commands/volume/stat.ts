import { Command } from "commander";
import { formatSize } from "@cairn/protocol";
import { contextOf } from "../../context.js";
import { formatAge, printJson } from "../../output.js";
import { modeString } from "./ls-files.js";

export function statCommand(): Command {
  return new Command("stat")
    .description("Show one file, directory or symlink of a volume: type, size, mode, mtime, ETag, link target")
    .argument("<volume>", "volume name or id")
    .argument("<path>", "path inside the volume")
    .option("-L, --follow", "describe what a final symlink points to, not the link")
    .addHelpText(
      "after",
      `
Exit status 3 (not found) when nothing is at the path, so scripts can test for a file:
  $ cairn volume stat team-data /data/ready --json >/dev/null 2>&1 && echo ready

Examples:
  $ cairn volume stat team-data /data/report.csv
  $ cairn volume stat team-data /current -L`,
    )
    .action(async (ref: string, path: string, options: { follow?: boolean }, command: Command) => {
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      const e = await volume.files.stat(path, { follow: options.follow === true, signal: ctx.signal });
      if (ctx.json) return printJson(e);
      const rows: [string, string][] = [
        ["PATH:", e.path],
        ["TYPE:", e.type],
        ["SIZE:", `${formatSize(e.size)} (${e.size} bytes)`],
        ["MODE:", `${modeString(e.type, e.mode)} (${(e.mode & 0o7777).toString(8).padStart(4, "0")})`],
        ["MODIFIED:", `${e.mtime} (${formatAge(e.mtime)})`],
      ];
      if (e.etag !== undefined) rows.push(["ETAG:", e.etag]);
      if (e.target !== undefined) rows.push(["TARGET:", e.target]);
      const width = Math.max(...rows.map(([k]) => k.length));
      process.stdout.write(rows.map(([k, v]) => `${ctx.out.dim(k.padEnd(width))}  ${v}`).join("\n") + "\n");
    });
}
