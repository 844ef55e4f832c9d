import { Command } from "commander";
import { contextOf } from "../../context.js";
import { deploymentTable, printJson } from "../../output.js";
import { APP_OPTION_NOTE, appOf } from "../deploy.js";

export function listCommand(): Command {
  return new Command("list")
    .alias("ls")
    .description("List deployments (every version), newest first")
    .option("--project <app>", "only this app's deployments")
    .option("--env <env>", "only this environment's")
    .addHelpText(
      "after",
      `${APP_OPTION_NOTE}

Examples:
  $ cairn deployments list
  $ cairn deployments list --project shop --env beta`,
    )
    .action(async (options: { env?: string }, command: Command) => {
      const app = appOf(command, { required: false });
      const ctx = contextOf(command, { projectIsApp: true });
      const query: Parameters<typeof ctx.cairn.deployments.list>[0] = { signal: ctx.signal };
      if (app !== undefined) query.app = app;
      if (options.env !== undefined) query.env = options.env;
      const items = await ctx.cairn.deployments.list(query);
      if (ctx.json) printJson(items);
      else if (items.length === 0) process.stderr.write(ctx.err.dim("No deployments yet. Deploy one: cairn deploy ./app --project <app>\n"));
      else process.stdout.write(deploymentTable(items, ctx.out));
    });
}
