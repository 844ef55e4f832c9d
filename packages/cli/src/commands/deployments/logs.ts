import { Command } from "commander";
import { setTimeout as sleep } from "node:timers/promises";
import { contextOf } from "../../context.js";
import { printJson } from "../../output.js";
import { APP_OPTION_NOTE, appArgument } from "../deploy.js";

/**
 * What of `now` was not yet printed, given what was. A log keeps its last 4 MiB only, so `now` may
 * have lost its start: then what we printed ends with the start of `now` (the overlap), and the
 * rest is new.
 */
export function unseen(printed: string, now: string): string {
  if (now.startsWith(printed)) return now.slice(printed.length);
  const firstLine = now.indexOf("\n") + 1;
  const head = now.slice(0, Math.min(64, firstLine > 0 ? firstLine : 64));
  for (let at = printed.lastIndexOf(head); at >= 0; at = at === 0 ? -1 : printed.lastIndexOf(head, at - 1)) {
    const overlap = printed.slice(at);
    if (now.startsWith(overlap)) return now.slice(overlap.length);
  }
  return now;
}

export function logsCommand(): Command {
  return new Command("logs")
    .description("Print the output of an app's latest version: its stdout on stdout, its stderr on stderr")
    .argument("[app]", "the app's name (as given to cairn deploy --project; --project <app> works too)")
    .option("--project <app>", "the app's name, instead of the argument")
    .option("--env <env>", "environment (default production)")
    .option("--serving", "the version that serves now (after a failed deploy: the old one), not the latest")
    .option("-f, --follow", "keep printing new output until the version stops or Ctrl-C")
    .addHelpText(
      "after",
      `${APP_OPTION_NOTE}

The latest version is the one that serves, or the last one that failed to start: its output says
why; --serving shows the version that still serves then. --json prints {deployment, stdout, stderr}.

Examples:
  $ cairn deployments logs shop
  $ cairn deployments logs shop --serving --follow
  $ cairn deployments logs shop --env beta 2>&1 | tail -20`,
    )
    .action(async (positional: string | undefined, options: { env?: string; serving?: boolean; follow?: boolean }, command: Command) => {
      const app = appArgument(command, positional);
      const ctx = contextOf(command, { projectIsApp: true });
      const query: Parameters<typeof ctx.cairn.deployments.logs>[0] = { app, signal: ctx.signal };
      if (options.env !== undefined) query.env = options.env;
      if (options.serving) query.serving = true;
      let logs = await ctx.cairn.deployments.logs(query);
      if (ctx.jsonRequested && !options.follow) {
        printJson(logs);
        return;
      }
      const d = logs.deployment;
      if (process.stderr.isTTY && !ctx.jsonRequested) process.stderr.write(ctx.err.dim(`${d.app} version ${d.version} (${d.env}, ${d.state}): ${d.command}\n`));
      if (!options.serving && d.state === "failed" && process.stderr.isTTY) {
        process.stderr.write(ctx.err.dim(`(this version failed to start; \`cairn deployments logs ${app} --serving\` shows the one that serves)\n`));
      }
      let out = "";
      let err = "";
      const show = () => {
        const o = unseen(out, logs.stdout);
        const e = unseen(err, logs.stderr);
        if (ctx.jsonRequested) {
          if (o || e) printJson({ version: logs.deployment.version, stdout: o, stderr: e });
        } else {
          process.stdout.write(o);
          process.stderr.write(e);
        }
        out = logs.stdout;
        err = logs.stderr;
      };
      show();
      if (!options.follow) return;
      // Follow this version (by number) while it runs; its end ends the command.
      const follow = { ...query, version: d.version };
      delete follow.serving;
      while (!ctx.signal.aborted && (logs.deployment.state === "running" || logs.deployment.state === "starting")) {
        await sleep(1000, undefined, { signal: ctx.signal }).catch(() => undefined);
        if (ctx.signal.aborted) break;
        logs = await ctx.cairn.deployments.logs(follow);
        show();
      }
    });
}
