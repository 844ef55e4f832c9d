import { Command } from "commander";
import { parsePositiveInt } from "../../args.js";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";
import { UsageError } from "../../errors.js";

function portOf(text: string): number {
  const port = parsePositiveInt(text, "<port>");
  if (port > 65535) throw new UsageError(`Invalid <port> "${text}": give 1-65535`);
  return port;
}

export function exposeCommand(): Command {
  return new Command("expose")
    .description("Print a URL that reaches a port inside the sandbox, routed by cairnd")
    .argument("<id>", "sandbox id (sbx_…)")
    .argument("<port>", "the port a server in the sandbox listens on (any address, loopback included)")
    .option("--public", "anyone with the URL may use it, without a token")
    .option("--private", "make a public port private again (a token in the URL, or an API key)")
    .addHelpText(
      "after",
      `
The URL is http://<port>-<sandbox>.<domain>:<cairnd's port>/ (domain CAIRN_DEPLOY_DOMAIN, default
localhost): HTTP, streaming and websockets. A private port's URL carries its token; a request
without it (or without an API key of the project) is refused with 401, and neither ever reaches
the sandbox. Exposing a port again prints the same URL. Works whatever the sandbox's --network.

Examples:
  $ cairn sandbox exec "$id" --background "python3 -m http.server 3000"
  $ cairn sandbox expose "$id" 3000
  $ curl "$(cairn sandbox expose "$id" 3000)"
  $ cairn sandbox expose "$id" 3000 --public
  $ cairn sandbox unexpose "$id" 3000`,
    )
    .action(async (id: string, port: string, options: { public?: boolean; private?: boolean }, command: Command) => {
      if (options.public && options.private) throw new UsageError("--public and --private contradict each other");
      const ctx = contextOf(command);
      const sandbox = await ctx.cairn.sandboxes.get(id, { signal: ctx.signal });
      const exposed = await sandbox.expose(portOf(port), { signal: ctx.signal, ...(options.public ? { public: true } : {}) });
      if (ctx.jsonRequested) printJson(exposed);
      else process.stdout.write(`${exposed.url}\n`);
    });
}

export function unexposeCommand(): Command {
  return new Command("unexpose")
    .description("Stop routing a port of the sandbox: its URL stops working at once")
    .argument("<id>", "sandbox id (sbx_…)")
    .argument("<port>", "the exposed port")
    .addHelpText(
      "after",
      `
Examples:
  $ cairn sandbox unexpose "$id" 3000`,
    )
    .action(async (id: string, port: string, _options: unknown, command: Command) => {
      const ctx = contextOf(command);
      const sandbox = await ctx.cairn.sandboxes.get(id, { signal: ctx.signal });
      const gone = await sandbox.unexpose(portOf(port), { signal: ctx.signal });
      if (ctx.jsonRequested) printJson(gone);
      else process.stdout.write(`port ${gone.port} of ${ctx.out.bold(sandbox.id)} is no longer routed\n`);
    });
}
