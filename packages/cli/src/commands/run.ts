import { stat } from "node:fs/promises";
import { extname, isAbsolute, normalize } from "node:path";
import { Command } from "commander";
import { shellJoin } from "../args.js";
import { contextOf } from "../context.js";
import { UsageError } from "../errors.js";
import { APP_OPTION_HELP, APP_OPTION_NOTE, appOf, deployDirectory, printDeployment, type DeployRequest } from "./deploy.js";

/** The interpreter for a file, by its extension. */
const RUNNERS: Record<string, string> = { ".py": "python3", ".js": "node", ".mjs": "node", ".cjs": "node" };

export function runCommand(): Command {
  return new Command("run")
    .description("Deploy the current directory and start one file in it: python3 for .py, node for .js")
    .argument("<file>", "the file to run, relative to the current directory")
    .option("--project <app>", APP_OPTION_HELP)
    .option("--env <env>", "environment (default production)")
    .addHelpText(
      "after",
      `${APP_OPTION_NOTE}

\`cairn run main.py --project shop\` is \`cairn deploy . --project shop --cmd "python3 main.py"\`.
The file must serve HTTP on $PORT.

Examples:
  $ cd app && cairn run main.py --project shop
  $ cairn run server.js --project shop --env beta`,
    )
    .action(async (file: string, options: { env?: string }, command: Command) => {
      const app = appOf(command)!;
      const runner = RUNNERS[extname(file).toLowerCase()];
      if (runner === undefined) {
        throw new UsageError(`cairn run starts .py and .js files, not ${file}`, `for anything else: cairn deploy . --project ${app} --cmd "<command>"`);
      }
      // The current directory is what gets deployed: the file has to be in it.
      const relative = normalize(file);
      if (isAbsolute(relative) || relative.startsWith("..")) {
        throw new UsageError(`${file} is outside the current directory, which is what gets deployed`, "cd into the app's directory first");
      }
      if (!(await stat(relative).catch(() => undefined))?.isFile()) throw new UsageError(`No file ${file} in the current directory`);
      const ctx = contextOf(command, { projectIsApp: true });
      const request: DeployRequest = { app, cmd: `${runner} ${shellJoin([relative])}` };
      if (options.env !== undefined) request.env = options.env;
      printDeployment(await deployDirectory(ctx, ".", request), ctx);
    });
}
