import { Command } from "commander";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";
import { APP_OPTION_NOTE, appArgument } from "../deploy.js";

export function deleteCommand(): Command {
  return new Command("delete")
    .alias("rm")
    .description("Stop an app (every environment, or one); its filesystem stays unless --delete-filesystem")
    .argument("[app]", "the app's name (as given to cairn deploy --project; --project <app> works too)")
    .option("--project <app>", "the app's name, instead of the argument")
    .option("--env <env>", "only this environment")
    .option("--delete-filesystem", "also delete the app's persistent filesystem (its local-fs-<app>-<env> volume): no undo")
    .addHelpText(
      "after",
      `${APP_OPTION_NOTE}

Without --delete-filesystem a later \`cairn deploy --project <app>\` finds the files where it left them.

Examples:
  $ cairn deployments delete shop --env beta
  $ cairn deployments delete shop --delete-filesystem`,
    )
    .action(async (positional: string | undefined, options: { env?: string; deleteFilesystem?: boolean }, command: Command) => {
      const app = appArgument(command, positional);
      const ctx = contextOf(command, { projectIsApp: true });
      const request: Parameters<typeof ctx.cairn.deployments.remove>[0] = { app, deleteFilesystem: options.deleteFilesystem === true, signal: ctx.signal };
      if (options.env !== undefined) request.env = options.env;
      const stopped = await ctx.cairn.deployments.remove(request);
      if (ctx.jsonRequested) printJson({ app, env: options.env ?? null, deployments: stopped, filesystemDeleted: options.deleteFilesystem === true });
      else if (process.stderr.isTTY) {
        const where = options.env ? `${app} (${options.env})` : app;
        process.stderr.write(`${ctx.err.green("✓")} stopped ${where}: ${stopped} deployment${stopped === 1 ? "" : "s"}${options.deleteFilesystem ? ", filesystem deleted" : ""}\n`);
      }
    });
}
