import { Command } from "commander";
import { CairnError } from "@cairn/protocol";
import type { ExecOptions } from "@cairn/sdk";
import { collect, parseDuration, parseEnv, shellJoin } from "../../args.js";
import { contextOf, exitStatus } from "../../context.js";
import { printJson } from "../../output.js";

interface ExecCommandOptions {
  cwd?: string;
  env?: string[];
  timeout?: string;
  background?: boolean;
}

export function execCommand(): Command {
  return new Command("exec")
    .description("Run a command in a sandbox: its output streams live, and cairn exits with its exit code")
    .argument("<id>", "sandbox id (sbx_…)")
    .argument("<command...>", "the command and its arguments, after --")
    .option("--cwd <dir>", "working directory (default: the sandbox's)")
    .option("--env <NAME=value>", "extra environment variable (repeatable)", collect)
    .option("--timeout <duration>", "kill the command after this long, e.g. 30s or 10m")
    .option("--background", "start it and return at once, printing its process id; read it with `cairn sandbox logs`")
    .addHelpText(
      "after",
      `
The words after -- are run as they are, quoted for /bin/sh; for pipes, redirections or several
commands, run a shell yourself: -- sh -c 'a | b > c'. stdout and stderr arrive on stdout and
stderr as the command writes them. The exit status is the command's own (137 if it was killed);
if cairn itself fails, the error is on stderr and the status is one of the codes in \`cairn --help\`.
With --json the output is collected and printed at the end as {stdout, stderr, exitCode}.

Examples:
  $ cairn sandbox exec "$id" -- cat /workspace/shared/hello.txt
  $ cairn sandbox exec "$id" --cwd /workspace --env NODE_ENV=test -- npm test
  $ cairn sandbox exec "$id" -- sh -c 'ls /data | wc -l'
  $ p=$(cairn sandbox exec "$id" --background -- node server.js) && cairn sandbox logs "$id" "$p"`,
    )
    .action(async (id: string, words: string[], options: ExecCommandOptions, command: Command) => {
      const request: ExecOptions = {};
      if (options.cwd !== undefined) request.cwd = options.cwd;
      const env = parseEnv(options.env);
      if (env !== undefined) request.env = env;
      if (options.timeout !== undefined) request.timeoutMs = parseDuration(options.timeout);
      const ctx = contextOf(command);
      if (options.background) {
        const sandbox = await ctx.cairn.sandboxes.get(id, { signal: ctx.signal });
        const proc = await sandbox.exec(shellJoin(words), { ...request, background: true, signal: ctx.signal });
        if (ctx.jsonRequested) printJson(proc.info);
        else process.stdout.write(`${proc.id}\n`);
        return;
      }
      if (!ctx.jsonRequested) {
        request.onStdout = (data) => process.stdout.write(data);
        request.onStderr = (data) => process.stderr.write(data);
      }
      const sandbox = await ctx.cairn.sandboxes.get(id, { signal: ctx.signal });
      const result = await sandbox.exec(shellJoin(words), { ...request, signal: ctx.signal });
      // The stream ended without the command's exit: the connection to cairnd broke mid-way.
      if (result.exitCode < 0) throw new CairnError("UNAVAILABLE", `The output of the command in ${id} ended before its exit status arrived`);
      if (ctx.jsonRequested) printJson(result);
      exitStatus.code = result.exitCode;
    });
}
