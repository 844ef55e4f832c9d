import { spawn } from "node:child_process";
import { stat } from "node:fs/promises";
import { Command } from "commander";
import type { Deployment } from "@cairn/sdk";
import { contextOf, type Context } from "../context.js";
import { UsageError } from "../errors.js";
import { printJson } from "../output.js";
import { progress, type Progress } from "../progress.js";

/** How `--project` reads on the app commands: the app's name, not the API project. */
export const APP_OPTION_HELP = "the app's name (lowercase letters, digits, -); it becomes the host name <app>.localhost";

/** Said once in every app command's help: the one place where `--project` means something else. */
export const APP_OPTION_NOTE = `
Here --project names the deployed app, served at http://<app>[.<env>].localhost:<port>/; it is
not the API project of the other commands. To act in another API project with an admin key, set
CAIRN_PROJECT.`;

/**
 * The app named by `--project`. The global `--project` option takes the value wherever it is
 * written (commander parses the program's options first), so it is read from there; main.ts
 * refuses it twice, where it would be ambiguous (API project or app?).
 */
export function appOf(command: Command, options: { required: boolean } = { required: true }): string | undefined {
  const app = command.optsWithGlobals<{ project?: string }>().project;
  if (app === undefined && options.required) {
    throw new UsageError("Name the app with --project <app>", `e.g. cairn ${command.name()} ${command.name() === "run" ? "main.py" : "./app"} --project shop`);
  }
  return app;
}

/** `cairn deployments logs shop` or `… logs --project shop`: the positional app, or the option's. */
export function appArgument(command: Command, positional: string | undefined): string {
  const option = appOf(command, { required: false });
  if (positional !== undefined && option !== undefined && positional !== option) {
    throw new UsageError(`Two app names: ${positional} and --project ${option}`, `give one, e.g. cairn ${command.parent?.name() ?? "deployments"} ${command.name()} ${positional}`);
  }
  const app = positional ?? option;
  if (app === undefined) throw new UsageError("Name the app", `e.g. cairn ${command.parent?.name() ?? "deployments"} ${command.name()} shop`);
  return app;
}

export interface DeployRequest {
  app: string;
  env?: string;
  cmd?: string;
}

/**
 * Pack `dir` with `tar -czf - -C dir .` and stream the archive to cairnd as tar writes it; nothing
 * is staged on disk or held in memory. Resolves once the new version serves.
 */
export async function deployDirectory(ctx: Context, dir: string, request: DeployRequest): Promise<Deployment> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) throw new UsageError(`${dir} is not a directory`, "give the directory that holds the app, e.g. cairn deploy ./app --project shop");

  const tar = spawn("tar", ["-czf", "-", "-C", dir, "."], { stdio: ["ignore", "pipe", "pipe"] });
  let tarErrors = "";
  tar.stderr.on("data", (d: Buffer) => (tarErrors += d.toString()));
  const packed = new Promise<void>((resolve, reject) => {
    tar.once("error", (err) => reject(new UsageError(`Cannot run tar: ${err.message}`, "cairn deploy needs tar on the PATH")));
    tar.once("close", (code, signal) => {
      if (code === 0) resolve();
      else reject(new UsageError(`tar could not pack ${dir} (${signal ?? `exit ${code}`}): ${tarErrors.trim() || "no message"}`));
    });
  });

  const label = `deploying ${request.app}${request.env ? ` (${request.env})` : ""}`;
  const bar: Progress = progress(label, undefined);
  // The upload ends only once tar has exited cleanly: a tar that fails half-way must not deploy
  // whatever it had written so far.
  async function* archive(): AsyncGenerator<Uint8Array> {
    for await (const chunk of tar.stdout as AsyncIterable<Buffer>) {
      bar.add(chunk.byteLength);
      yield chunk;
    }
    await packed;
  }
  try {
    const options: Parameters<typeof ctx.cairn.deployments.deploy>[0] = { app: request.app, data: archive(), signal: ctx.signal };
    if (request.env !== undefined) options.env = request.env;
    if (request.cmd !== undefined) options.cmd = request.cmd;
    // tar's own failure, when there is one, comes first and says more than the broken upload.
    const [deployment] = await Promise.all([ctx.cairn.deployments.deploy(options), packed]);
    return deployment;
  } finally {
    bar.done();
    // cairnd may answer before reading the whole archive (a refused app name): stop tar.
    if (tar.exitCode === null && tar.signalCode === null) tar.kill();
  }
}

/** The URL alone when piped (`url=$(cairn deploy …)`), JSON when asked, a sentence for a person. */
export function printDeployment(d: Deployment, ctx: Context): void {
  if (ctx.jsonRequested) printJson(d);
  else if (!ctx.tty) process.stdout.write(`${d.url}\n`);
  else process.stdout.write(`${ctx.out.green("✓")} ${ctx.out.bold(d.app)} version ${d.version} (${d.env}, ${d.command}) serves at ${ctx.out.bold(d.url)}\n`);
}

export function deployCommand(): Command {
  return new Command("deploy")
    .description("Deploy a directory as an app, with a persistent filesystem that survives every redeploy")
    .argument("[dir]", "the app's directory", ".")
    .option("--project <app>", APP_OPTION_HELP)
    .option("--env <env>", "environment, e.g. beta: its own URL and filesystem (default production)")
    .option("--cmd <command>", "start command (default: python3 main.py for main.py, npm start for a package.json start script)")
    .addHelpText(
      "after",
      `${APP_OPTION_NOTE}

The directory is packed with tar and uploaded. The app runs with its code in /data/app (replaced
on every deploy), its filesystem in $CAIRN_LOCAL_FS (kept across deploys) and must serve HTTP on
$PORT. cairn answers when the new version serves; the old one then stops. A version that does not
start fails with exit 2 (DEPLOY_FAILED) and the old one keeps serving.

Prints the URL (alone when stdout is not a terminal; --json for the whole deployment).

Examples:
  $ cairn deploy ./app --project shop
  $ cairn deploy ./app --project shop --env beta --cmd "python3 main.py"
  $ curl "$(cairn deploy ./app --project shop)"`,
    )
    .action(async (dir: string, options: { env?: string; cmd?: string }, command: Command) => {
      const app = appOf(command)!;
      const ctx = contextOf(command, { projectIsApp: true });
      const request: DeployRequest = { app };
      if (options.env !== undefined) request.env = options.env;
      if (options.cmd !== undefined) request.cmd = options.cmd;
      printDeployment(await deployDirectory(ctx, dir, request), ctx);
    });
}
