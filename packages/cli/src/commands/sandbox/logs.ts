import { Command } from "commander";
import { contextOf, exitStatus } from "../../context.js";
import { printJson } from "../../output.js";

export function logsCommand(): Command {
  return new Command("logs")
    .description("Show the output of a command started with `exec --background`")
    .argument("<id>", "sandbox id (sbx_…)")
    .argument("<process>", "process id, as `exec --background` printed it")
    .option("--wait", "wait until the command exits, then print its output and exit with its status")
    .addHelpText(
      "after",
      `
Prints what the command wrote so far: stdout on stdout, stderr on stderr. While it still runs,
cairn exits 0; with --wait it waits for the end and exits with the command's own status. --json
prints {id, command, state, exitCode, stdout, stderr}.

Examples:
  $ p=$(cairn sandbox exec "$id" --background -- sh -c 'npm install && npm test')
  $ cairn sandbox logs "$id" "$p"
  $ cairn sandbox logs "$id" "$p" --wait`,
    )
    .action(async (id: string, processId: string, options: { wait?: boolean }, command: Command) => {
      const ctx = contextOf(command);
      const sandbox = await ctx.cairn.sandboxes.get(id, { signal: ctx.signal });
      const info = await sandbox.process(processId, { logs: true, wait: options.wait === true, signal: ctx.signal });
      if (ctx.jsonRequested) printJson(info);
      else {
        process.stdout.write(info.stdout ?? "");
        process.stderr.write(info.stderr ?? "");
      }
      if (options.wait && info.exitCode !== null) exitStatus.code = info.exitCode;
    });
}
