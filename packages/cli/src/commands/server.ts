/**
 * `cairn server` starts cairnd in this process. cairnd parses its own flags (`runServer`), so the
 * arguments after `server` are handed over untouched, `--help` included.
 */
import { Command } from "commander";

/**
 * Imported lazily: the server pulls in Fastify, SQLite and the volume engine, which every other
 * command can do without (and which a machine that only talks to a remote cairnd may lack).
 */
export async function runServerCommand(args: string[]): Promise<number> {
  const { runServer } = await import("@cairn/server");
  return runServer(args);
}

/**
 * The `server` entry as commander sees it: listed in `cairn --help`, options left unparsed. main.ts
 * normally intercepts `cairn server …` before commander runs; this path serves `cairn help server`
 * and global options given before `server`.
 */
export function serverCommand(onExit: (code: number) => void): Command {
  return new Command("server")
    .description("Start cairnd, the Cairn server (needs root; see cairn server --help)")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument("[options...]", "cairnd's options: --data-dir, --listen, --region, --release, --help")
    .addHelpText("after", "\nRun `cairn server --help` for cairnd's options and environment variables.")
    .action(async (_args: string[], _options: unknown, command: Command) => {
      onExit(await runServerCommand(command.args));
    });
}
