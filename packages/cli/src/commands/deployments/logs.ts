import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";
import { APP_OPTION_NOTE, appArgument } from "../deploy.js";

export function logsCommand(): Command {
  return new Command("logs")
    .description("Print the output of an app's latest version: its stdout on stdout, its stderr on stderr")
    .argument("[app]", "the app's name (as given to cairn deploy --project; --project <app> works too)")
    .option("--project <app>", "the app's name, instead of the argument")
    .option("--env <env>", "environment (default production)")
    .addHelpText(
      "after",
      `${APP_OPTION_NOTE}

The latest version is the one that serves, or the last one that failed to start: its output says
why. --json prints {deployment, stdout, stderr}.

Examples:
  $ cairn deployments logs shop
  $ cairn deployments logs shop --env beta 2>&1 | tail -20`,
    )
    .action(async (positional: string | undefined, options: { env?: string }, command: Command) => {
      const app = appArgument(command, positional);
      const ctx = contextOf(command, { projectIsApp: true });
      const query: Parameters<typeof ctx.cairn.deployments.logs>[0] = { app, signal: ctx.signal };
      if (options.env !== undefined) query.env = options.env;
      const logs = await ctx.cairn.deployments.logs(query);
      if (ctx.jsonRequested) {
        printJson(logs);
        return;
      }
      const d = logs.deployment;
      if (process.stderr.isTTY) process.stderr.write(ctx.err.dim(`${d.app} version ${d.version} (${d.env}, ${d.state}): ${d.command}\n`));
      process.stdout.write(logs.stdout);
      process.stderr.write(logs.stderr);
    });
}
