import { Command } from "commander";
import type { CreateSandboxOptions } from "@cairn/sdk";
import { collect, parseDuration, parseEnv, parseMemoryMb, parseMount, parsePositiveInt } from "../../args.js";
import { contextOf } from "../../context.js";
import { printJson, sandboxDetails } from "../../output.js";
import { UsageError } from "../../errors.js";
import { pullWithProgress } from "../image/pull.js";

interface CreateOptions {
  template?: string;
  image?: string;
  volume?: string[];
  env?: string[];
  cwd?: string;
  memory?: string;
  pids?: string;
  disk?: string;
  cpus?: string;
  timeout?: string;
  network?: string;
  allow?: string[];
  deny?: string[];
}

/** The `--volume` form, shared by `create` and `attach` help texts. */
export const VOLUME_OPTION_HELP =
  "ref=<volume>,mount=</path>[,mode=ro][,subpath=<dir>][,checkpoint=<name>]: mount a volume (ro: read-only; subpath: only that directory; checkpoint: that checkpoint, read-only)";

export function createCommand(): Command {
  return new Command("create")
    .description("Create and start a sandbox, with volumes mounted")
    .option("--template <name>", "what the sandbox runs: base is the host's /usr and /etc, read-only (the default)")
    .option("--image <ref>", "run an OCI image instead (node:20, 127.0.0.1:5000/team/tool:1.2): pulled first if not on the host, with progress on a terminal")
    .option("--volume <spec>", `${VOLUME_OPTION_HELP} (repeatable)`, collect)
    .option("--env <NAME=value>", "environment variable for every command (repeatable)", collect)
    .option("--cwd <dir>", "working directory of exec (default /)")
    .option("--memory <MiB>", "memory limit in MiB, or a size such as 1GiB (default 512)")
    .option("--pids <n>", "process limit (default 256)")
    .option("--cpus <n>", "CPU limit in cores, e.g. 0.5 or 2 (default 1)")
    .option("--disk <GiB>", "size of the sandbox's own writable disk in GiB (default: the server's, 4); full is ENOSPC inside it only")
    .option("--timeout <duration>", "kill the sandbox after this long, e.g. 10m or 2h (default: never)")
    .option("--network <mode>", "none (loopback only) or egress (the internet through the host, with DNS); default: the server's CAIRN_SANDBOX_NETWORK")
    .option("--allow <rule>", "reachable although private, or with --network none the only destinations: CIDR, CIDR:port or CIDR:first-last (repeatable)", collect)
    .option("--deny <rule>", "never reachable, wins over --allow: CIDR, CIDR:port or CIDR:first-last (repeatable)", collect)
    .addHelpText(
      "after",
      `
Prints the new sandbox's id alone when stdout is not a terminal, so a script can keep it; --json
prints the whole sandbox instead. Kill it with \`cairn sandbox kill <id>\` when done: its volumes
are released for the next sandbox.

Examples:
  $ cairn sandbox create --template base --volume ref=team-data,mount=/workspace/shared
  $ cairn sandbox create --image node:20 --volume ref=my_project,mount=/workspace
  $ id=$(cairn sandbox create --volume ref=data,mount=/data,mode=ro --volume ref=team-data,mount=/proj,subpath=projects/p1)
  $ cairn sandbox create --volume ref=team-data,mount=/old,checkpoint=before-migration --env MODE=audit --timeout 10m
  $ cairn sandbox create --network egress --allow 10.0.0.5/32:5432 --deny 203.0.113.0/24
  $ cairn sandbox create --network none --allow 10.0.0.5/32:5432     # that database and nothing else

A sandbox never reaches the host itself (cairnd's API included), link-local addresses (cloud
metadata, 169.254.0.0/16) or other sandboxes, whatever the rules say; with egress, private ranges
(10/8, 172.16/12, 192.168/16, 100.64/10) stay closed unless --allow opens them.`,
    )
    .action(async (options: CreateOptions, command: Command) => {
      // Everything is checked before the request: a typo must not leave a half-wanted sandbox running.
      if (options.image !== undefined && options.template !== undefined) throw new UsageError("Give --template or --image, not both");
      const request: CreateSandboxOptions = options.image !== undefined ? { image: options.image } : { template: options.template ?? "base" };
      if (options.volume !== undefined) request.volumes = options.volume.map(parseMount);
      const env = parseEnv(options.env);
      if (env !== undefined) request.env = env;
      if (options.cwd !== undefined) request.cwd = options.cwd;
      if (options.memory !== undefined) request.memoryMb = parseMemoryMb(options.memory);
      if (options.pids !== undefined) request.pids = parsePositiveInt(options.pids, "--pids");
      if (options.cpus !== undefined) {
        const cpus = Number(options.cpus);
        if (!Number.isFinite(cpus) || cpus <= 0) throw new UsageError(`Invalid --cpus "${options.cpus}": give a number of cores, e.g. --cpus 0.5`);
        request.cpus = cpus;
      }
      if (options.disk !== undefined) request.diskGb = parsePositiveInt(options.disk.replace(/\s*(GiB|G|GB)$/i, ""), "--disk");
      if (options.timeout !== undefined) request.timeoutMs = parseDuration(options.timeout);
      if (options.network !== undefined && options.network !== "none" && options.network !== "egress") {
        throw new UsageError(`Invalid --network "${options.network}": give none or egress`);
      }
      if (options.allow !== undefined || options.deny !== undefined) {
        request.network = { egress: options.network === "egress", ...(options.allow ? { allow: options.allow } : {}), ...(options.deny ? { deny: options.deny } : {}) };
        if (options.network === undefined) throw new UsageError("--allow and --deny need --network egress or --network none (what is open besides the rules)");
      } else if (options.network !== undefined) request.network = options.network;
      const ctx = contextOf(command);
      // A person waiting on a terminal sees the pull of an image that is not here yet.
      if (options.image !== undefined && process.stderr.isTTY && !ctx.jsonRequested) {
        const here = await ctx.cairn.images.get(options.image, { signal: ctx.signal }).then(
          () => true,
          (err: unknown) => (err as { code?: string }).code !== "IMAGE_NOT_FOUND",
        );
        if (!here) await pullWithProgress(ctx.cairn, options.image, ctx.signal);
      }
      const sandbox = await ctx.cairn.sandboxes.create({ ...request, signal: ctx.signal });
      printSandbox(sandbox.info, ctx);
    });
}

/** `create` and `fork`: the id alone for `id=$(…)`, JSON when asked, the details for a person. */
export function printSandbox(info: Parameters<typeof sandboxDetails>[0], ctx: ReturnType<typeof contextOf>): void {
  if (ctx.jsonRequested) printJson(info);
  else if (!ctx.tty) process.stdout.write(`${info.id}\n`);
  else process.stdout.write(sandboxDetails(info, ctx.out));
}
