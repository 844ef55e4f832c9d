#!/usr/bin/env node
/**
 * `cairn`: the command line for Cairn volumes. This file builds the command tree and is the only
 * place that prints errors and decides the exit status; commands just throw.
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { checkpointCommands } from "./commands/checkpoint/index.js";
import { deployCommand } from "./commands/deploy.js";
import { deploymentsCommands } from "./commands/deployments/index.js";
import { runCommand } from "./commands/run.js";
import { sandboxCommands } from "./commands/sandbox/index.js";
import { imageCommands } from "./commands/image/index.js";
import { keyCommand, projectCommand } from "./commands/project/index.js";
import { volumeCommands } from "./commands/volume/index.js";
import { runServerCommand, serverCommand } from "./commands/server.js";
import { exitStatus, interrupt, resolveGlobals, DEFAULT_URL, type GlobalOptions } from "./context.js";
import { EXIT, UsageError, exitCodeHelp, reportError } from "./errors.js";

const VERSION = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;

const PROGRAM_HELP = `
Environment:
  CAIRN_URL       cairnd's URL (default ${DEFAULT_URL})
  CAIRN_API_KEY   API key; \`cairn server\` prints the admin key when it starts
  CAIRN_PROJECT   project to act on (admin key only; default: the key's project)
  NO_COLOR        set to turn colour off (colour is only ever used on a terminal)

Output is a table on a terminal and JSON when stdout is piped or --json is given.
Errors go to stderr: "error: …" on a terminal, {"error":{code,detail,status,requestId}} otherwise.

${exitCodeHelp()}

Examples:
  $ export CAIRN_URL=http://127.0.0.1:7070 CAIRN_API_KEY=<key>
  $ cairn volume create team-data
  $ printf "persistent\\n" | cairn volume write team-data /hello.txt
  $ cairn volume read team-data /hello.txt
  $ cairn volume list --field name --field sizeBytes
  $ cairn checkpoint create team-data --name before-migration
  $ id=$(cairn sandbox create --volume ref=team-data,mount=/workspace/shared)
  $ cairn sandbox exec "$id" -- cat /workspace/shared/hello.txt
  $ cairn image pull node:20
  $ cairn deploy ./app --project shop`;

const VOLUME_HELP = `
Examples:
  $ cairn volume create big_vol --size 10GiB --access-mode ReadWriteMany --label team=ml
  $ cairn volume list
  $ cairn volume get team-data --json`;

const CHECKPOINT_HELP = `
Examples:
  $ cairn checkpoint create team-data --name before-migration
  $ cairn checkpoint list team-data
  $ cairn checkpoint restore team-data before-migration
  $ cairn volume create team-data-copy --from-checkpoint team-data:before-migration
  $ cairn checkpoint export team-data before-migration -o team-data.img`;

const SANDBOX_HELP = `
Examples:
  $ id=$(cairn sandbox create --template base --volume ref=team-data,mount=/workspace/shared)
  $ cairn sandbox exec "$id" -- cat /workspace/shared/hello.txt
  $ cairn sandbox attach "$id" --volume ref=cache,mount=/cache
  $ cairn sandbox kill "$id"`;

const IMAGE_HELP = `
Images live on the cairnd host, each layer unpacked once and shared by every sandbox that runs it.
\`cairn sandbox create --image <ref>\` pulls what is not there yet.

Examples:
  $ cairn image pull node:20
  $ cairn image import ./tool.tar
  $ cairn image list
  $ cairn sandbox create --image node:20 --volume ref=my_project,mount=/workspace
  $ cairn image rm node:20`;

const DEPLOYMENTS_HELP = `
Deploy with \`cairn deploy\` or \`cairn run\`; these commands look at what is deployed.

Examples:
  $ cairn deployments list --project shop
  $ cairn deployments logs shop --env beta
  $ cairn deployments delete shop --env beta`;

/**
 * `--project` may be given once: deploy, run and deployments read it as the app's name, so
 * `cairn --project team deploy . --project shop` would otherwise silently lose one of the two.
 */
function once(value: string, previous: string | undefined): string {
  if (previous !== undefined) {
    throw new InvalidArgumentError("--project is given twice (deploy, run and deployments read it as the app's name; set CAIRN_PROJECT for the API project)");
  }
  return value;
}

/** What went wrong on the command line, as commander reported it (it only gives us a string). */
interface UsageProblem {
  message: string;
  command: string;
}

function buildProgram(onServerExit: (code: number) => void, usage: { last?: UsageProblem }): Command {
  const program = new Command("cairn")
    .description("Persistent volumes for sandboxes: volumes, checkpoints, sandboxes and deployed apps")
    .version(VERSION, "-V, --version", "print the version")
    .option("--url <url>", `cairnd's URL (env CAIRN_URL, default ${DEFAULT_URL})`)
    .option("--api-key <key>", "API key (env CAIRN_API_KEY)")
    .option("--project <name>", "act on this project, with an admin key (env CAIRN_PROJECT); for deploy, run and deployments: the app's name", once)
    .option("--json", "print JSON, also for errors (the default when stdout is not a terminal)")
    .addHelpText("after", PROGRAM_HELP);

  const volume = new Command("volume").alias("volumes").description("Create, inspect, read, write, grow and delete volumes").addHelpText("after", VOLUME_HELP);
  for (const verb of volumeCommands()) volume.addCommand(verb);
  program.addCommand(volume);
  const checkpoint = new Command("checkpoint").alias("checkpoints").description("Take, list, restore, export and delete checkpoints of a volume").addHelpText("after", CHECKPOINT_HELP);
  for (const verb of checkpointCommands()) checkpoint.addCommand(verb);
  program.addCommand(checkpoint);
  const sandbox = new Command("sandbox").alias("sandboxes").description("Run sandboxes with volumes mounted: create, exec, attach, hibernate, fork, kill").addHelpText("after", SANDBOX_HELP);
  for (const verb of sandboxCommands()) sandbox.addCommand(verb);
  program.addCommand(sandbox);
  const image = new Command("image").alias("images").description("Pull, import, list and remove OCI images that sandboxes run").addHelpText("after", IMAGE_HELP);
  for (const verb of imageCommands()) image.addCommand(verb);
  program.addCommand(image);
  program.addCommand(deployCommand());
  program.addCommand(runCommand());
  const deployments = new Command("deployments").alias("deployment").description("List deployed apps, read their logs, stop them").addHelpText("after", DEPLOYMENTS_HELP);
  for (const verb of deploymentsCommands()) deployments.addCommand(verb);
  program.addCommand(deployments);
  program.addCommand(projectCommand());
  program.addCommand(keyCommand());
  program.addCommand(serverCommand(onServerExit));

  // Settings that commander only copies to subcommands made with .command(), applied to all.
  const setup = (command: Command, path: string): void => {
    command
      .exitOverride()
      .showSuggestionAfterError()
      .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
      .configureOutput({
        // Keep commander's message and print it our way (text or JSON) with the right exit code.
        outputError: (message) => {
          usage.last = { message: message.replace(/^error:\s*/, "").trim(), command: path };
        },
      });
    for (const sub of command.commands) setup(sub, `${path} ${sub.name()}`);
  };
  setup(program, "cairn");
  // Which command ran, for hints that depend on it (VOLUME_BUSY means one thing to restore, another to detach).
  program.hook("preAction", (_program, action) => {
    const names: string[] = [];
    for (let c: Command | null = action; c; c = c.parent) names.unshift(c.name());
    ran.command = names.join(" ");
  });
  return program;
}

/** The command being run, once commander has chosen it. */
const ran: { command?: string } = {};

/** Set once cairnd has run in this process: it may leave timers behind, so we exit explicitly. */
let serverRan = false;

async function main(argv: string[]): Promise<number> {
  // `cairn server …` goes straight to cairnd's own flag parser, before commander sees any of it.
  if (argv[0] === "server") {
    serverRan = true;
    return runServerCommand(argv.slice(1));
  }

  let exitCode: number = EXIT.OK;
  const usage: { last?: UsageProblem } = {};
  const program = buildProgram((code) => {
    serverRan = true;
    exitCode = code;
  }, usage);
  // Words after `--` belong to someone else (`cairn sandbox exec id -- curl --json …`).
  const ours = argv.includes("--") ? argv.slice(0, argv.indexOf("--")) : argv;
  const json = () => program.opts<GlobalOptions>().json === true || ours.includes("--json");

  process.once("SIGINT", () => {
    interrupt.abort();
    // A second Ctrl-C does not wait for the clean-up.
    process.once("SIGINT", () => process.exit(EXIT.INTERRUPTED));
  });

  try {
    await program.parseAsync(argv, { from: "user" });
    return exitStatus.code ?? exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return EXIT.OK; // --help, --version
      // A command group run without a verb: commander already printed its help on stderr.
      if (err.code === "commander.help") return EXIT.USAGE;
      const problem = usage.last ?? { message: err.message, command: "cairn" };
      return reportError(new UsageError(problem.message, `see \`${problem.command} --help\``), { url: DEFAULT_URL, json: json() });
    }
    const context: { url: string; json: boolean; command?: string } = { url: resolveGlobals(program.opts<GlobalOptions>()).url, json: json() };
    if (ran.command !== undefined) context.command = ran.command;
    return reportError(err, context);
  }
}

// A reader that goes away (`cairn volume list | head -1`) is not an error worth a stack trace.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    if (serverRan) process.exit(code);
    // Otherwise let pending output drain and the process end by itself.
    process.exitCode = code;
  },
  (err: unknown) => {
    // Only reached if printing the error itself failed.
    process.stderr.write(`cairn: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = EXIT.INTERNAL;
  },
);
