import { Command, Option } from "commander";
import { MAX_SIGNED_URL_SECONDS } from "@cairn/protocol";
import { contextOf } from "../../context.js";
import { UsageError } from "../../errors.js";
import { printJson } from "../../output.js";

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `15m` → 900 seconds; units s, m, h, d; a bare number is seconds. */
export function parseExpires(text: string): number {
  const m = /^\s*(\d+)\s*([smhd])?\s*$/.exec(text);
  const seconds = m ? Number(m[1]) * UNITS[m[2] ?? "s"]! : NaN;
  if (!m || !(seconds >= 1 && seconds <= MAX_SIGNED_URL_SECONDS)) {
    throw new UsageError(`Invalid --expires "${text}": give a duration from 1s to 7d, e.g. 15m, 2h or 7d`);
  }
  return seconds;
}

export function signCommand(): Command {
  return new Command("sign")
    .description("Make a URL for one file that works without a key (curl, a browser) until it expires")
    .argument("<volume>", "volume name or id")
    .argument("<path>", "the file inside the volume")
    .option("--expires <duration>", "how long the URL works: 30s, 15m, 2h, 7d (default 15m, at most 7d)", "15m")
    .addOption(new Option("--method <method>", "GET to download, PUT to upload").choices(["GET", "PUT"]).default("GET"))
    .addHelpText(
      "after",
      `
The URL is for that path and method only; anything else (another path, another method, an
altered URL, after expiry) is refused with 403.

Examples:
  $ cairn volume sign team-data /report.pdf --expires 15m
  $ curl -o report.pdf "$(cairn volume sign team-data /report.pdf)"
  $ curl -T data.csv "$(cairn volume sign team-data /inbox/data.csv --method PUT --expires 1h)"`,
    )
    .action(async (ref: string, path: string, options: { expires: string; method: "GET" | "PUT" }, command: Command) => {
      const expiresIn = parseExpires(options.expires);
      const ctx = contextOf(command);
      const volume = await ctx.cairn.volumes.get(ref, { signal: ctx.signal });
      const r = await volume.files.sign(path, { method: options.method, expiresIn, signal: ctx.signal });
      if (ctx.jsonRequested) printJson(r);
      else {
        process.stdout.write(`${r.url}\n`);
        if (process.stderr.isTTY) process.stderr.write(ctx.err.dim(`${r.method} ${r.path}, valid until ${r.expiresAt}\n`));
      }
    });
}
